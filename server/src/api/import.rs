//! The user import's body and answer: the upload spooled to an unnamed
//! temporary file (read twice: checked, then written), and the progress of
//! the writes as NDJSON lines.

use poem::Body;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::domain::imports::{Outcome, Progress};
use crate::domain::{Error, Result};

/// An import body larger than this is refused (a million users is about
/// 200 MB).
pub const MAX_IMPORT_BYTES: u64 = 4 << 30;

/// Writes `body` to an unnamed temporary file (gone when closed).
pub async fn spool(body: Body) -> Result<std::fs::File> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| Error::Internal(format!("temporary file: {e}")))?
        .map_err(|e| Error::Internal(format!("temporary file: {e}")))?;
    let mut spooled = tokio::fs::File::from_std(file);
    let mut reader = body.into_async_read().take(MAX_IMPORT_BYTES + 1);
    let copied = tokio::io::copy(&mut reader, &mut spooled)
        .await
        .map_err(|e| Error::ImportUnreadable(format!("the import body could not be read: {e}")))?;
    if copied > MAX_IMPORT_BYTES {
        return Err(Error::ImportUnreadable(format!("the import body is larger than {MAX_IMPORT_BYTES} bytes")));
    }
    spooled.flush().await.map_err(|e| Error::Internal(format!("temporary file: {e}")))?;
    Ok(spooled.into_std().await)
}

/// The progress of an import as NDJSON, a line at a time.
pub fn results(progress: tokio::sync::mpsc::Receiver<Progress>) -> Body {
    let lines = futures_util::stream::unfold(progress, |mut progress| async move {
        let next = progress.recv().await?;
        let line = match next {
            Progress::Line(result) => {
                let mut line = json!({"line": result.line, "id": result.id, "result": result.outcome.as_str()});
                if let Outcome::Failed(reason) = &result.outcome {
                    line["reason"] = json!(reason);
                }
                line
            }
            Progress::Done(t) => json!({
                "done": true, "created": t.created, "updated": t.updated, "skipped": t.skipped, "failed": t.failed
            }),
            Progress::Stopped(reason) => json!({"stopped": reason}),
        };
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        Some((Ok::<_, std::io::Error>(bytes), progress))
    });
    Body::from_bytes_stream(lines)
}
