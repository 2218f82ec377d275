//! The `/_emulator/*` control endpoints (not part of the Account Kit API and
//! not counted in the stats): test logins, call counters, fault injection
//! (what a fault does is in [`super::faults`]), app secret resets.
//!
//! # `/_emulator/faults`
//!
//! `POST` a JSON object, every key optional (unknown keys are refused with
//! 400 `{"error":"…"}`); the reply is the fault now active, `{}` for none.
//! `GET` shows it with `times` / `after` counting down; `DELETE` (or `POST
//! {}`) clears it. One fault is active at a time: a `POST` replaces it.
//!
//! | key | value | default |
//! |---|---|---|
//! | `latency_ms` | wait this long before answering | no wait |
//! | `status` | answer with this HTTP status (100–599) instead of processing | process the call |
//! | `body` | the body of that answer, sent verbatim | a Graph error fitting `status` (5xx: code 2 transient, 429: code 4, other ≥ 400: code 1); 200 if only `body` is given |
//! | `code2` | `"transient"` (Graph's outage) or `"misconfigured"` (Account Kit's answer to a wrong app id or secret): a code-2 Graph error, see [`super::faults`]; not with `body`, and `status` ≥ 400 | status 500 |
//! | `calls` | the kinds of call faulted, by `/_emulator/stats` counter name (`me`, `access_token`, `logout`, `invalidate_all_tokens`, `delete`, `accounts`); other calls pass untouched and count neither `after` nor `times` | every real-API call |
//! | `after` | let this many (matching) calls through first | 0 |
//! | `times` | fault this many (matching) calls, then clear | until cleared |
//!
//! `code2` and `calls` were added after the other keys; a spec without them
//! means what it always did, except that a 5xx `status` without `body` now
//! answers Graph's transient code-2 body rather than the recorded
//! misconfiguration body (ask for that one with `"code2":"misconfigured"`).

use actix_web::http::{Method, StatusCode};
use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::faults::FaultSpec;
use super::phone;
use super::reply;
use super::state::{Login, Shared};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct LoginReply {
    code: String,
    access_token: String,
    account_id: String,
}

fn control_error(status: StatusCode, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "error": message }).to_string();
    reply::raw(status, body)
}

/// Loose syntactic check: `local@domain.tld`, printable, no spaces, ≤ 254 bytes.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && email.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
}

async fn read_json_body(payload: Payload) -> Result<Vec<u8>, HttpResponse> {
    let mut payload = payload;
    let mut buf = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            control_error(StatusCode::BAD_REQUEST, "could not read the request body")
        })?;
        if buf.len() + chunk.len() > super::params::MAX_BODY {
            return Err(control_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRequest {
    secret: String,
}

/// `POST /_emulator/apps/{app_id}/secret {"secret": "…"}`: resets an app's
/// Account Kit app secret, as the dashboard's "Reset" did. The answer never
/// repeats it.
fn set_secret(shared: &Shared, app_id: &str, body: &[u8]) -> HttpResponse {
    let req: SecretRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(_) => {
            return control_error(StatusCode::BAD_REQUEST, "expected JSON {\"secret\":\"…\"}")
        }
    };
    if req.secret.is_empty() {
        return control_error(StatusCode::BAD_REQUEST, "the secret must not be empty");
    }
    if shared.state.lock().set_app_secret(app_id, req.secret) {
        reply::ok(serde_json::json!({"app_id": app_id, "secret": "reset"}).to_string())
    } else {
        control_error(StatusCode::NOT_FOUND, "no such app")
    }
}

fn login(shared: &Shared, body: &[u8]) -> HttpResponse {
    let req: LoginRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                &format!("expected JSON {{\"phone\":\"+…\"}} or {{\"email\":\"…\"}} with optional \"app_id\": {e}"),
            )
        }
    };
    let login = match (req.phone, req.email) {
        (Some(p), None) => match phone::parse(&p) {
            Ok(p) => Login::Phone(p),
            Err(e) => return control_error(StatusCode::BAD_REQUEST, &e),
        },
        (None, Some(e)) => {
            if !valid_email(&e) {
                return control_error(
                    StatusCode::BAD_REQUEST,
                    "email must look like name@example.com",
                );
            }
            Login::Email(e)
        }
        _ => {
            return control_error(
                StatusCode::BAD_REQUEST,
                "give exactly one of \"phone\" or \"email\"",
            )
        }
    };
    let mut state = shared.state.lock();
    let app = match req.app_id.as_deref() {
        None => 0,
        Some(id) => match state.app_index(id) {
            Some(i) => i,
            None => {
                drop(state);
                return control_error(StatusCode::BAD_REQUEST, "unknown app_id");
            }
        },
    };
    let minted = state.login(app, login).and_then(|account_id| {
        let code = state.mint_code(&account_id)?;
        let access_token = state.mint_token(&account_id)?;
        Some(LoginReply {
            code,
            access_token,
            account_id,
        })
    });
    drop(state);
    match minted.and_then(|r| serde_json::to_string(&r).ok()) {
        Some(body) => reply::ok(body),
        None => control_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not create the login",
        ),
    }
}

fn set_faults(shared: &Shared, body: &[u8]) -> HttpResponse {
    let spec: FaultSpec = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected JSON {{\"latency_ms\",\"status\",\"body\",\"code2\",\"calls\",\"times\",\"after\"}}: {e}"
                ),
            )
        }
    };
    if let Err(why) = spec.check() {
        return control_error(StatusCode::BAD_REQUEST, why);
    }
    let json = shared.faults.lock().set(spec);
    reply::ok(json)
}

/// Answers a `/_emulator/*` request; `path` is the part after `/_emulator/`.
pub(crate) async fn handle(
    shared: &Shared,
    req: &HttpRequest,
    payload: Payload,
    path: &str,
) -> HttpResponse {
    let method = req.method().clone();
    match (path.trim_end_matches('/'), method) {
        ("login", Method::POST) => match read_json_body(payload).await {
            Ok(body) => login(shared, &body),
            Err(res) => res,
        },
        ("stats", Method::GET) => reply::ok(shared.stats.to_json()),
        ("stats", Method::DELETE) => {
            shared.stats.reset();
            reply::ok(shared.stats.to_json())
        }
        ("faults", Method::POST) => match read_json_body(payload).await {
            Ok(body) => set_faults(shared, &body),
            Err(res) => res,
        },
        ("faults", Method::GET) => {
            let json = shared.faults.lock().to_json();
            reply::ok(json)
        }
        ("faults", Method::DELETE) => {
            shared.faults.lock().clear();
            reply::ok("{}".to_owned())
        }
        ("login" | "stats" | "faults", _) => {
            control_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (path, method) => match path
            .strip_prefix("apps/")
            .and_then(|rest| rest.strip_suffix("/secret"))
        {
            Some(app_id) if method == Method::POST => match read_json_body(payload).await {
                Ok(body) => set_secret(shared, app_id, &body),
                Err(res) => res,
            },
            Some(_) => control_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            None => control_error(
                StatusCode::NOT_FOUND,
                "unknown control endpoint (login, stats, faults, apps/{app_id}/secret)",
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(valid_email("a@example.com"));
        for bad in [
            "",
            "a",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@b..com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
