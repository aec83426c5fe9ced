use futures::StreamExt;
use http::header;
use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit (413).
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The stream broke (client went away, bad framing) (400).
    #[error("cannot read request body: {0}")]
    Read(String),
}

/// Reads the whole body, refusing more than `limit` bytes. A declared
/// `content-length` over the limit is refused before reading anything; a body
/// without one is cut off as soon as it passes the limit, so a client cannot
/// make the guest buffer an arbitrary amount.
pub async fn read_body_limited(request: Request, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }

    let mut chunks = request.into_body().stream();
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
