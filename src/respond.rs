//! Responses the gateway produces itself (4xx/5xx, CORS preflights): always a JSON body with the
//! request id and a reason code a client can act on. Rule details are never included.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The JSON body of a gateway error: `{"error":…, "reason":…, "request_id":…, "status":…}`.
pub fn error_body(status: u16, reason: &str, request_id: &str) -> Bytes {
    let message = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    let v = serde_json::json!({
        "error": message,
        "reason": reason,
        "request_id": request_id,
        "status": status,
    });
    Bytes::from(v.to_string())
}

/// Build the response header of a gateway answer.
pub fn header(
    status: u16,
    request_id: &str,
    content_len: usize,
    extra: &[(HeaderName, HeaderValue)],
) -> pingora::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(4 + extra.len()))?;
    if content_len > 0 {
        h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    h.insert_header(http::header::CONTENT_LENGTH, content_len.to_string())?;
    h.insert_header("x-request-id", request_id)?;
    for (k, v) in extra {
        h.append_header(k.clone(), v.clone())?;
    }
    Ok(h)
}

/// Write a JSON error answer to the client.
pub async fn send_error(
    session: &mut Session,
    status: u16,
    reason: &str,
    request_id: &str,
    extra: &[(HeaderName, HeaderValue)],
) -> pingora::Result<()> {
    let body = error_body(status, reason, request_id);
    let h = header(status, request_id, body.len(), extra)?;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}
