//! Strict base64url without padding: canonical trailing bits only, so one
//! token has exactly one encoding.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// Decodes a base64url segment; any deviation from canonical, unpadded form is `Malformed`.
pub(crate) fn decode(segment: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| Error::Malformed)
}

/// Encodes bytes as unpadded base64url.
#[cfg(feature = "sign")]
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
