//! The web demo at /demo: `web-demo/` and the browser files of the npm
//! verifier package, embedded in the binary by build.rs.

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Response, handler};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/demo_assets.rs"));
}

/// `/demo` → `/demo/`, so the page's relative URLs resolve below it.
#[handler]
pub fn root() -> Response {
    Response::builder().status(StatusCode::MOVED_PERMANENTLY).header(header::LOCATION, "/demo/").finish()
}

/// A file below /demo/: the page itself at /demo/, and `reset-password` and
/// `verify-email`, the pages latch's mails link to.
#[handler]
pub fn file(Path(path): Path<String>) -> poem::Result<Response> {
    match path.as_str() {
        "" => asset("index.html"),
        "reset-password" => asset("reset-password.html"),
        "verify-email" => asset("verify-email.html"),
        name => asset(name),
    }
}

fn asset(name: &str) -> poem::Result<Response> {
    let (_, bytes) = embedded::ASSETS
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .ok_or_else(|| poem::Error::from_status(StatusCode::NOT_FOUND))?;
    Ok(Response::builder().content_type(content_type(name)).header(header::CACHE_CONTROL, "no-cache").body(*bytes))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}
