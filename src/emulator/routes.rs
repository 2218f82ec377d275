//! The Graph endpoints under `/{version}/…`.
//!
//! One entry point ([`dispatch`]) parses the path itself, so that unknown
//! paths, wrong methods and trailing slashes all get Graph-shaped answers.

use std::sync::atomic::Ordering;

use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Payload};
use actix_web::{HttpRequest, HttpResponse};

use super::control;
use super::params::{self, Params, ParamsError};
use super::proof;
use super::reply::{self, json_str, GraphError};
use super::state::{cursor, AppCredential, PageFrom, Shared, State};
use super::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, TOKEN_REFRESH_INTERVAL_SEC};

/// What a `/{version}/…` path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Me,
    AccessToken,
    Logout,
    /// `/{account_id}/invalidate_all_tokens`
    InvalidateAll(&'a str),
    /// `/{id}` (DELETE deletes an account)
    Object(&'a str),
    /// `/{app_id}/accounts`
    Accounts(&'a str),
    /// Anything else: the unknown path components.
    Unknown,
}

fn classify<'a>(segments: &[&'a str]) -> Endpoint<'a> {
    match segments {
        ["me"] => Endpoint::Me,
        ["access_token"] => Endpoint::AccessToken,
        ["logout"] => Endpoint::Logout,
        [id] if !id.is_empty() => Endpoint::Object(id),
        [id, "invalidate_all_tokens"] if !id.is_empty() => Endpoint::InvalidateAll(id),
        [id, "accounts"] if !id.is_empty() => Endpoint::Accounts(id),
        _ => Endpoint::Unknown,
    }
}

/// Counts the call; its counter's name (what a fault's `"calls"` names),
/// `None` for a call no counter counts.
fn count(shared: &Shared, endpoint: Endpoint<'_>, method: &Method) -> Option<&'static str> {
    let (name, counter) = match endpoint {
        Endpoint::Me => ("me", &shared.stats.me),
        Endpoint::AccessToken => ("access_token", &shared.stats.access_token),
        Endpoint::Logout => ("logout", &shared.stats.logout),
        Endpoint::InvalidateAll(_) => {
            ("invalidate_all_tokens", &shared.stats.invalidate_all_tokens)
        }
        Endpoint::Object(_) if method == Method::DELETE => ("delete", &shared.stats.delete),
        Endpoint::Accounts(_) => ("accounts", &shared.stats.accounts),
        Endpoint::Object(_) | Endpoint::Unknown => return None,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Some(name)
}

/// `Some(include_application)` for a version of the form `v<major>.<minor>`.
///
/// v1.0 and v1.1 answered `/me` without the `application` object.
fn parse_version(v: &str) -> Option<bool> {
    let (major, minor) = v.strip_prefix('v')?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    let major: u64 = major.parse().ok()?;
    let minor: u64 = minor.parse().ok()?;
    Some((major, minor) >= (1, 2))
}

/// The single actix handler: control endpoints, then the Graph API.
pub(crate) async fn dispatch(
    req: HttpRequest,
    payload: Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    // Method and path only: query strings and bodies carry tokens and secrets.
    tracing::debug!(method = %req.method(), path = %req.path(), "accountkit emulator request");
    let path = req.path().to_owned();
    if let Some(rest) = path.strip_prefix("/_emulator/") {
        return control::handle(&shared, &req, payload, rest).await;
    }

    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').collect();
    let (version, rest) = match segments.split_first() {
        Some((v, rest)) => (*v, rest),
        None => ("", &[][..]),
    };
    let endpoint = classify(rest);
    let method = req.method().clone();
    let call = count(&shared, endpoint, &method);

    // Read the body before any fault so the connection stays usable.
    let params = params::read(&req, payload).await;

    let applied = shared.faults.lock().next_call(call);
    if let Some(applied) = applied {
        if let Some(latency) = applied.latency {
            actix_web::rt::time::sleep(latency).await;
        }
        if let Some(response) = applied.response() {
            return response;
        }
    }

    let Some(with_application) = parse_version(version) else {
        return GraphError::unknown_path(&format!("/{trimmed}")).response();
    };
    let params = match params {
        Ok(p) => p,
        Err(ParamsError::TooLarge) => {
            return GraphError::invalid_param("(#100) The request body is too large").response()
        }
        Err(ParamsError::Malformed(why)) => {
            return GraphError::invalid_param(format!(
                "(#100) Could not read the parameters: {why}"
            ))
            .response()
        }
    };
    let call = Call {
        shared: &shared,
        params: &params,
        version,
        method: &method,
    };
    let result = match endpoint {
        Endpoint::Me if is_get_or_post(&method) => call.me(with_application),
        Endpoint::AccessToken if is_get_or_post(&method) => call.exchange(),
        Endpoint::Logout if method == Method::POST => call.logout(),
        Endpoint::InvalidateAll(id) if method == Method::POST => call.invalidate_all(id),
        Endpoint::Object(id) if method == Method::DELETE => call.delete(id),
        Endpoint::Accounts(app_id) if method == Method::GET => call.accounts(app_id),
        Endpoint::Me => Err(GraphError::unsupported(method.as_str(), "me")),
        Endpoint::AccessToken => Err(GraphError::unsupported(method.as_str(), "access_token")),
        Endpoint::Logout => Err(GraphError::unsupported(method.as_str(), "logout")),
        Endpoint::InvalidateAll(id) | Endpoint::Object(id) | Endpoint::Accounts(id) => {
            Err(GraphError::unsupported(method.as_str(), id))
        }
        Endpoint::Unknown => {
            let components = rest.get(1..).unwrap_or_default().join("/");
            Err(GraphError::unknown_path(&format!("/{components}")))
        }
    };
    match result {
        Ok(body) => reply::ok(body),
        Err(e) => e.response(),
    }
}

fn is_get_or_post(m: &Method) -> bool {
    m == Method::GET || m == Method::POST
}

/// One real-API call being answered.
struct Call<'a> {
    shared: &'a Shared,
    params: &'a Params,
    version: &'a str,
    method: &'a Method,
}

type Answer = Result<String, GraphError>;

fn success() -> String {
    r#"{"success":true}"#.to_owned()
}

impl Call<'_> {
    fn access_token(&self) -> Option<&str> {
        self.params.get("access_token").filter(|t| !t.is_empty())
    }

    /// A user-token call: the token is checked first, then the proof (when
    /// the token's app requires one). Returns `(app, account_id)`.
    fn user(&self, state: &State) -> Result<(usize, String), GraphError> {
        let token = self
            .access_token()
            .ok_or_else(GraphError::no_active_token)?;
        match state.app_credential(token) {
            AppCredential::Wrong => {
                return Err(GraphError::service_unavailable(
                    StatusCode::INTERNAL_SERVER_ERROR,
                ))
            }
            AppCredential::Secret(_) | AppCredential::ClientToken(_) => {
                return Err(GraphError::no_active_token())
            }
            AppCredential::NotAppToken => {}
        }
        let (app, account_id) = state.user_token(token)?;
        let app_cfg = state.app(app).ok_or_else(GraphError::invalid_token)?;
        if app_cfg.require_appsecret_proof {
            match self.params.get("appsecret_proof").filter(|p| !p.is_empty()) {
                None => return Err(GraphError::proof_missing()),
                Some(p) if !proof::matches(&app_cfg.secret, token, p) => {
                    return Err(GraphError::proof_invalid())
                }
                Some(_) => {}
            }
        }
        Ok((app, account_id))
    }

    /// An admin call: only `AA|app_id|app_secret` is accepted.
    fn admin(&self, state: &State) -> Result<usize, GraphError> {
        match state.app_credential(self.access_token().unwrap_or_default()) {
            AppCredential::Secret(app) => Ok(app),
            AppCredential::Wrong => Err(GraphError::service_unavailable(
                StatusCode::INTERNAL_SERVER_ERROR,
            )),
            AppCredential::ClientToken(_) | AppCredential::NotAppToken => {
                Err(GraphError::app_token_required())
            }
        }
    }

    fn me(&self, with_application: bool) -> Answer {
        let state = self.shared.state.lock();
        let (app, account_id) = self.user(&state)?;
        let app_id = state.app(app).map(|a| a.id.clone());
        let application = if with_application {
            app_id.as_deref()
        } else {
            None
        };
        state
            .account_json(&account_id, application)
            .ok_or_else(GraphError::invalid_token)
    }

    fn logout(&self) -> Answer {
        let mut state = self.shared.state.lock();
        self.user(&state)?;
        if let Some(token) = self.access_token() {
            state.logout(token);
        }
        Ok(success())
    }

    fn exchange(&self) -> Answer {
        let mut state = self.shared.state.lock();
        let app = match state.app_credential(self.access_token().unwrap_or_default()) {
            AppCredential::Secret(app) | AppCredential::ClientToken(app) => app,
            AppCredential::Wrong => {
                return Err(GraphError::service_unavailable(
                    StatusCode::INTERNAL_SERVER_ERROR,
                ))
            }
            AppCredential::NotAppToken => return Err(GraphError::app_token_required()),
        };
        match self.params.get("grant_type") {
            Some("authorization_code") => {}
            _ => {
                return Err(GraphError::invalid_param(
                    "(#100) Param grant_type must be authorization_code",
                ))
            }
        }
        let code = self
            .params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| GraphError::invalid_param("(#100) The parameter code is required"))?;
        let (account_id, token) = state.exchange(app, code)?;
        drop(state);
        Ok(format!(
            "{{\"id\":{},\"access_token\":{},\"token_refresh_interval_sec\":{TOKEN_REFRESH_INTERVAL_SEC}}}",
            json_str(&account_id),
            json_str(&token)
        ))
    }

    fn invalidate_all(&self, account_id: &str) -> Answer {
        let mut state = self.shared.state.lock();
        let app = self.admin(&state)?;
        if state.invalidate_all(app, account_id) {
            Ok(success())
        } else {
            Err(GraphError::unsupported(self.method.as_str(), account_id))
        }
    }

    fn delete(&self, account_id: &str) -> Answer {
        let mut state = self.shared.state.lock();
        let app = self.admin(&state)?;
        if state.delete(app, account_id) {
            Ok(success())
        } else {
            Err(GraphError::unsupported(self.method.as_str(), account_id))
        }
    }

    fn accounts(&self, app_id: &str) -> Answer {
        let (page, limit) = {
            let state = self.shared.state.lock();
            let app = self.admin(&state)?;
            if state.app(app).map(|a| a.id.as_str()) != Some(app_id) {
                return Err(GraphError::unsupported(self.method.as_str(), app_id));
            }
            let limit = match self.params.get("limit") {
                None => DEFAULT_PAGE_LIMIT,
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE_LIMIT).contains(l))
                    .ok_or_else(|| {
                        GraphError::invalid_param(format!(
                            "(#100) The parameter limit must be between 1 and {MAX_PAGE_LIMIT}"
                        ))
                    })?,
            };
            let from = match (self.params.get("after"), self.params.get("before")) {
                (Some(a), _) => PageFrom::After(cursor::decode(a).ok_or_else(|| {
                    GraphError::invalid_param("(#100) The parameter after is not a valid cursor")
                })?),
                (None, Some(b)) => PageFrom::Before(cursor::decode(b).ok_or_else(|| {
                    GraphError::invalid_param("(#100) The parameter before is not a valid cursor")
                })?),
                (None, None) => PageFrom::Start,
            };
            (state.page(app, from, limit), limit)
        };
        let (Some(first), Some(last)) = (page.items.first(), page.items.last()) else {
            return Ok(r#"{"data":[]}"#.to_owned());
        };
        let (before, after) = (cursor::encode(first.0), cursor::encode(last.0));
        let url = |key: &str, value: &str| {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", self.access_token().unwrap_or_default())
                .append_pair("limit", &limit.to_string())
                .append_pair(key, value)
                .finish();
            format!(
                "{}/{}/{app_id}/accounts/?{query}",
                self.shared.base_url, self.version
            )
        };
        let data: Vec<&str> = page.items.iter().map(|(_, json)| json.as_str()).collect();
        let mut body = format!(
            "{{\"data\":[{}],\"paging\":{{\"cursors\":{{\"before\":{},\"after\":{}}}",
            data.join(","),
            json_str(&before),
            json_str(&after)
        );
        if page.has_previous {
            body.push_str(&format!(
                ",\"previous\":{}",
                json_str(&url("before", &before))
            ));
        }
        if page.has_next {
            body.push_str(&format!(",\"next\":{}", json_str(&url("after", &after))));
        }
        body.push_str("}}");
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("v1.3"), Some(true));
        assert_eq!(parse_version("v1.2"), Some(true));
        assert_eq!(parse_version("v2.0"), Some(true));
        assert_eq!(parse_version("v1.1"), Some(false));
        assert_eq!(parse_version("v1.0"), Some(false));
        for bad in [
            "", "v", "v1", "1.3", "v1.", "v.3", "v1.3x", "v1.3.1", "V1.3", "v+1.3",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(classify(&["me"]), Endpoint::Me);
        assert_eq!(classify(&["12", "accounts"]), Endpoint::Accounts("12"));
        assert_eq!(classify(&["12"]), Endpoint::Object("12"));
        assert_eq!(classify(&["me", "x"]), Endpoint::Unknown);
        assert_eq!(classify(&[]), Endpoint::Unknown);
        assert_eq!(classify(&[""]), Endpoint::Unknown);
    }
}
