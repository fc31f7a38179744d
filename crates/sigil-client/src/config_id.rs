//! Config ids: `session/service`, what a launcher names when it attests
//! (`docs/protocol.md` §1.1). One definition for the launcher (init.toml,
//! `SIGIL_CONFIG_ID`) and the CAS (`POST /v1/attest`), in the terms of the
//! session language, so that every service a valid session can define is
//! addressable and nothing else is.

/// Why a string is not a config id. One line, never more than 100
/// characters of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config id {shown:?} {why}")]
pub struct ConfigIdError {
    shown: String,
    why: String,
}

/// Splits a config id into (session, service) and checks both parts.
///
/// Session names may be namespaced (`team/shop/web` is service `web` of
/// session `team/shop`) and service names have no `/`, so the service is
/// what follows the **last** `/`. The session part must be a valid
/// [`sigil_session::SessionName`] (segments of `[A-Za-z0-9_.~-]`, none
/// empty, `.` or `..`, 255 bytes in all) and the service part a valid
/// session-language name (`[A-Za-z0-9_.-]{1,128}`; like every name of the
/// session language it may start with `.`).
pub fn split_config_id(s: &str) -> Result<(&str, &str), ConfigIdError> {
    let fail = |why: String| ConfigIdError {
        shown: s.chars().take(100).collect(),
        why,
    };
    let (session, service) = s
        .rsplit_once('/')
        .ok_or_else(|| fail("is not session/service".into()))?;
    session
        .parse::<sigil_session::SessionName>()
        .map_err(|e| fail(format!("has an {e}")))?;
    if let Some(why) = sigil_session::name_error(service) {
        return Err(fail(format!("has an invalid service name: {why}")));
    }
    Ok((session, service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_config_ids_split_at_the_last_slash() {
        for (id, session, service) in [
            ("shop/web", "shop", "web"),
            ("team/shop/web", "team/shop", "web"),
            ("a/b/c/d", "a/b/c", "d"),
            // Leading dots: valid in session segments and service names of
            // the session language, so valid here (the launcher and the CAS
            // used to refuse a service `.x` that a session may define).
            (".shop/web", ".shop", "web"),
            ("shop/.web", "shop", ".web"),
            ("shop/...", "shop", "..."),
            ("~me/x_y-z.1", "~me", "x_y-z.1"),
        ] {
            assert_eq!(split_config_id(id), Ok((session, service)), "{id}");
        }
        let long_service = "s".repeat(128);
        let id = format!("shop/{long_service}");
        assert!(split_config_id(&id).is_ok());
        let long_session = ["a".repeat(127), "b".repeat(127)].join("/");
        assert_eq!(long_session.len(), 255);
        assert!(split_config_id(&format!("{long_session}/web")).is_ok());
    }

    #[test]
    fn invalid_config_ids_are_refused_saying_why() {
        let long_session = ["a".repeat(128), "b".repeat(127)].join("/");
        let long_segment = "a".repeat(129);
        let long_service = format!("shop/{}", "s".repeat(129));
        for (id, why) in [
            ("", "not session/service"),
            ("shopweb", "not session/service"),
            ("/web", "invalid session name"),
            ("shop//web", "invalid session name"),
            ("shop/", "invalid service name"),
            ("./web", "invalid session name"),
            ("../web", "invalid session name"),
            ("a/./web", "invalid session name"),
            ("a/../web", "invalid session name"),
            ("sh op/web", "invalid session name"),
            ("shop/we b", "invalid service name"),
            ("shop/web~", "invalid service name"),
            ("shop/wéb", "invalid service name"),
            ("shop/web\n", "invalid service name"),
            ("shop\0/web", "invalid session name"),
            (&format!("{long_session}/web"), "longer than 255"),
            (&format!("{long_segment}/web"), "longer than 128"),
            (&long_service, "longer than 128"),
        ] {
            let e = split_config_id(id).unwrap_err().to_string();
            assert!(e.contains(why), "{id:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
            assert!(e.len() < 400, "{e}");
        }
    }
}
