//! The management API under `/v1` (see `docs/cas-api.md`). Every route
//! needs a client certificate; the access policies decide the rest.

use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::http::{self, HttpResponse};
use crate::state::{CasState, ConnInfo};
use crate::CasError;

/// Decodes `%XX` escapes of a URL path segment.
pub fn percent_decode(s: &str) -> Result<String, CasError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| CasError::BadRequest("malformed %-escape in the URL".into()))?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| CasError::BadRequest("URL is not UTF-8".into()))
}

fn query_u64(query: Option<&str>, key: &str, default: u64) -> Result<u64, CasError> {
    for pair in query.unwrap_or("").split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if k == key {
                return v.parse().map_err(|_| {
                    CasError::BadRequest(format!("query parameter `{key}` must be a number"))
                });
            }
        }
    }
    Ok(default)
}

fn text(body: &Bytes) -> Result<&str, CasError> {
    if body.is_empty() {
        return Err(CasError::BadRequest(
            "empty body: send the session YAML".into(),
        ));
    }
    std::str::from_utf8(body).map_err(|e| {
        CasError::BadRequest(format!(
            "body is not UTF-8 (byte {}): send the session YAML",
            e.valid_up_to()
        ))
    })
}

/// Routes one management request. `path` starts with `/v1/`.
pub fn handle(
    state: &CasState,
    conn: &ConnInfo,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Bytes,
) -> HttpResponse {
    match dispatch(state, conn, method, path, query, body) {
        Ok(r) => r,
        Err(e) => http::from_error(&e),
    }
}

fn dispatch(
    state: &CasState,
    conn: &ConnInfo,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Bytes,
) -> Result<HttpResponse, CasError> {
    let caller = conn.require_client()?;
    match (method, path) {
        (&Method::POST, "/v1/sessions") => {
            let r = state.create_session(&caller, text(&body)?)?;
            tracing::info!(session = %r.name, client = %caller, "session created");
            Ok(http::json(StatusCode::CREATED, &r))
        }
        (&Method::PUT, "/v1/sessions") => {
            let r = state.update_session(&caller, text(&body)?)?;
            tracing::info!(session = %r.name, client = %caller, "session updated");
            Ok(http::json(StatusCode::OK, &r))
        }
        (&Method::GET, "/v1/sessions") => {
            Ok(http::json(StatusCode::OK, &state.list_sessions(&caller)?))
        }
        (&Method::GET, "/v1/audit") => {
            let from = query_u64(query, "from", 0)?;
            let limit = query_u64(query, "limit", crate::state::MAX_AUDIT_PAGE)?;
            Ok(http::json(
                StatusCode::OK,
                &state.audit_page(&caller, from, limit)?,
            ))
        }
        (&Method::GET, "/v1/audit/verify") => {
            // Same readers as the log itself.
            state.audit_page(&caller, 0, 1)?;
            match state.verify_audit() {
                Ok(r) => Ok(http::json(StatusCode::OK, &r)),
                Err(CasError::Integrity(m)) => Ok(http::error(StatusCode::CONFLICT, m)),
                Err(e) => Err(e),
            }
        }
        (m, p) if p.starts_with("/v1/sessions/") => {
            let name = percent_decode(&p["/v1/sessions/".len()..])?;
            match *m {
                Method::GET => Ok(http::json(
                    StatusCode::OK,
                    &state.get_session_info(&caller, &name)?,
                )),
                Method::DELETE => {
                    state.delete_session(&caller, &name)?;
                    tracing::info!(session = %name, client = %caller, "session deleted");
                    Ok(http::json(
                        StatusCode::OK,
                        &serde_json::json!({ "deleted": name }),
                    ))
                }
                _ => Err(CasError::BadRequest(format!(
                    "method {m} is not allowed on {p}: use GET or DELETE"
                ))),
            }
        }
        _ => Err(CasError::NotFound(format!("no route {method} {path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a/b%20c").unwrap(), "a/b c");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn query_parsing() {
        assert_eq!(query_u64(Some("from=3&limit=2"), "limit", 9).unwrap(), 2);
        assert_eq!(query_u64(None, "from", 9).unwrap(), 9);
        assert!(query_u64(Some("from=x"), "from", 0).is_err());
    }
}
