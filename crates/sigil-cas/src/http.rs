//! Response helpers shared by the handlers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};
use serde::Serialize;
use sigil_client::wire::ErrorBody;

use crate::CasError;

/// The response type of every handler.
pub type HttpResponse = Response<Full<Bytes>>;

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(b) => with_type(status, "application/json", b.into()),
        Err(_) => with_type(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            Bytes::from_static(br#"{"error":"cannot encode the answer"}"#),
        ),
    }
}

/// A response with a content type.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// A JSON error body `{"error": message}` with a status.
pub fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    json(
        status,
        &ErrorBody {
            error: message.into(),
            current: None,
            given: None,
        },
    )
}

/// The response for a [`CasError`]. Internal details of 5xx errors are
/// logged, not sent.
pub fn from_error(e: &CasError) -> HttpResponse {
    let status = e.status();
    match e {
        CasError::Conflict {
            message,
            current,
            given,
        } => json(
            status,
            &ErrorBody {
                error: message.clone(),
                current: current.clone(),
                given: given.clone(),
            },
        ),
        _ if status.is_server_error() => {
            tracing::error!(error = %e, "request failed");
            let msg = match e {
                CasError::Integrity(_) => "stored data failed an integrity check; see the CAS log",
                _ => "internal error; see the CAS log",
            };
            error(status, msg)
        }
        _ => error(status, e.to_string()),
    }
}
