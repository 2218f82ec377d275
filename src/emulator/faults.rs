//! Fault injection: what a fault posted to `/_emulator/faults` does to the
//! real-API calls that follow (latency, a canned status or body, a code-2
//! answer of either meaning, which calls, how many, after how many). The
//! control endpoint only parses and stores it.
//!
//! # The two meanings of code 2
//!
//! Graph error code 2 is Graph's "service temporarily unavailable", and it
//! is also what Account Kit answered for a misconfigured app (a wrong app id
//! or app secret in the `AA|…|…` token). A fault produces either on request
//! (`"code2"`):
//!
//! * `"transient"` (also the answer to a 5xx `status` given without a body):
//!   Graph's outage body, `{"error":{"message":"An unexpected error has
//!   occurred. Please retry your request later.","type":"OAuthException",
//!   "is_transient":true,"code":2,"fbtrace_id":"…"}}`, with HTTP 500 unless
//!   `status` says otherwise. Modelled on Graph: graph.facebook.com answered
//!   this during its outages (Graph client libraries recorded it), and no
//!   Account Kit outage was recorded;
//! * `"misconfigured"`: what Account Kit answered for a misconfigured app, byte
//!   for byte as recorded, `{"error":{"message":"Service temporarily
//!   unavailable","type":"EMApiException","is_transient":true,"code":2,
//!   "fbtrace_id":"…"}}`, with HTTP 500 (as recorded) unless `status` says
//!   otherwise. The same body the emulator gives, unfaulted, to an app token
//!   with a wrong id or secret.
//!
//! Both claim `is_transient: true`: a client cannot tell them apart from the
//! answer alone (nor should it match on `message` or `type`).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use super::reply::{self, GraphError};

/// The real-API calls a fault can be limited to (`"calls"`): the names of
/// the `/_emulator/stats` counters.
pub(crate) const CALLS: [&str; 6] = [
    "me",
    "access_token",
    "logout",
    "invalidate_all_tokens",
    "delete",
    "accounts",
];

/// Which code-2 answer a fault gives; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Code2 {
    /// Graph's "service temporarily unavailable" (an outage).
    Transient,
    /// Account Kit's answer to a misconfigured app, as recorded.
    Misconfigured,
}

impl Code2 {
    fn error(self, status: StatusCode) -> GraphError {
        match self {
            Code2::Transient => GraphError::unexpected_error(status),
            Code2::Misconfigured => GraphError::service_unavailable(status),
        }
    }
}

/// A fault as posted to `/_emulator/faults` (and as reported back, with
/// `times` / `after` showing what remains).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code2: Option<Code2>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
}

impl FaultSpec {
    /// Why the spec cannot be applied, if it cannot.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        match self.status {
            Some(s) if !(100..=599).contains(&s) => return Err("status must be 100–599"),
            Some(s) if s < 400 && self.code2.is_some() => {
                return Err("a code 2 answer needs an error status (400–599)")
            }
            _ => {}
        }
        if self.code2.is_some() && self.body.is_some() {
            return Err("give \"code2\" or \"body\", not both");
        }
        match &self.calls {
            Some(calls) if calls.is_empty() => Err("\"calls\" must name at least one call"),
            Some(calls) if calls.iter().any(|c| !CALLS.contains(&c.as_str())) => Err(
                "\"calls\" names: me, access_token, logout, invalidate_all_tokens, delete, accounts",
            ),
            _ => Ok(()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.latency_ms.is_none()
            && self.status.is_none()
            && self.body.is_none()
            && self.code2.is_none()
    }

    /// Whether the fault applies to a call of this kind (`None`: a call no
    /// counter counts, e.g. an unknown path).
    fn applies_to(&self, call: Option<&str>) -> bool {
        match &self.calls {
            None => true,
            Some(calls) => call.is_some_and(|call| calls.iter().any(|c| c == call)),
        }
    }

    /// The canned answer, if the faulted call is not to be processed.
    fn canned(&self) -> Option<Canned> {
        let status = self.status.or(match (self.code2, &self.body) {
            (Some(_), _) => Some(500),
            (None, Some(_)) => Some(200),
            (None, None) => None,
        })?;
        let status = StatusCode::from_u16(status).ok()?;
        let body = match (self.code2, &self.body) {
            (Some(code2), _) => Body::Error(code2.error(status)),
            (None, Some(body)) => Body::Verbatim(body.clone()),
            (None, None) if status.as_u16() >= 400 => Body::Error(default_fault_error(status)),
            (None, None) => Body::Verbatim(String::new()),
        };
        Some(Canned { status, body })
    }
}

/// What to do to one real-API call.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) latency: Option<Duration>,
    /// `Some` when the call must not be processed but answered with this.
    canned: Option<Canned>,
}

#[derive(Debug, Clone)]
struct Canned {
    status: StatusCode,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// Sent as given, with the usual headers.
    Verbatim(String),
    /// A Graph error, with its trace id and error headers.
    Error(GraphError),
}

impl Applied {
    /// The canned reply of a faulted call, if it is not to be processed.
    pub(crate) fn response(&self) -> Option<HttpResponse> {
        let canned = self.canned.as_ref()?;
        Some(match &canned.body {
            Body::Verbatim(body) => reply::raw(canned.status, body.clone()),
            Body::Error(error) => error.response(),
        })
    }
}

/// A Graph error body that fits an injected status.
fn default_fault_error(status: StatusCode) -> GraphError {
    match status.as_u16() {
        429 => GraphError::rate_limited(status),
        500..=599 => Code2::Transient.error(status),
        _ => GraphError::unknown(status),
    }
}

/// The active fault, if any.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    active: Option<FaultSpec>,
}

impl Faults {
    /// Consumes one real-API call of kind `call` (a stats counter name, or
    /// `None` for an uncounted call) from the fault budget. A call the fault
    /// is not limited to passes and consumes nothing.
    pub(crate) fn next_call(&mut self, call: Option<&str>) -> Option<Applied> {
        let spec = self.active.as_mut()?;
        if !spec.applies_to(call) {
            return None;
        }
        if let Some(after) = spec.after.as_mut() {
            if *after > 0 {
                *after -= 1;
                return None;
            }
        }
        match spec.times.as_mut() {
            Some(0) => {
                self.active = None;
                return None;
            }
            Some(t) => *t -= 1,
            None => {}
        }
        let applied = Applied {
            latency: spec.latency_ms.map(Duration::from_millis),
            canned: spec.canned(),
        };
        if spec.times == Some(0) {
            self.active = None;
        }
        Some(applied)
    }

    /// Replaces the active fault (an empty spec clears it); the reply body.
    pub(crate) fn set(&mut self, spec: FaultSpec) -> String {
        self.active = if spec.is_empty() { None } else { Some(spec) };
        self.to_json()
    }

    /// Clears the active fault.
    pub(crate) fn clear(&mut self) {
        self.active = None;
    }

    /// The active fault as JSON (`{}` when none).
    pub(crate) fn to_json(&self) -> String {
        let spec = self.active.clone().unwrap_or_default();
        serde_json::to_string(&spec).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(spec: FaultSpec) -> Faults {
        Faults { active: Some(spec) }
    }

    #[test]
    fn after_then_times() {
        let mut f = faults(FaultSpec {
            status: Some(503),
            times: Some(2),
            after: Some(1),
            ..FaultSpec::default()
        });
        assert!(f.next_call(Some("me")).is_none());
        assert!(f.next_call(Some("me")).is_some());
        assert!(f.next_call(None).is_some());
        assert!(f.next_call(Some("me")).is_none());
        assert!(f.active.is_none());
    }

    #[test]
    fn unlimited_until_cleared() {
        let mut f = faults(FaultSpec {
            latency_ms: Some(5),
            ..FaultSpec::default()
        });
        for _ in 0..100 {
            let a = f.next_call(Some("me")).unwrap();
            assert_eq!(a.latency, Some(Duration::from_millis(5)));
            assert!(a.response().is_none());
        }
    }

    #[test]
    fn limited_to_some_calls() {
        let mut f = faults(FaultSpec {
            code2: Some(Code2::Misconfigured),
            calls: Some(vec!["me".to_owned()]),
            times: Some(1),
            after: Some(1),
            ..FaultSpec::default()
        });
        // Other calls pass and consume neither "after" nor "times".
        assert!(f.next_call(Some("accounts")).is_none());
        assert!(f.next_call(None).is_none());
        assert!(f.next_call(Some("me")).is_none());
        assert!(f.next_call(Some("accounts")).is_none());
        let applied = f.next_call(Some("me")).expect("faulted");
        let canned = applied.canned.expect("answered instead of processed");
        assert_eq!(canned.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            matches!(canned.body, Body::Error(e) if e == GraphError::service_unavailable(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert!(f.active.is_none());
    }

    #[test]
    fn code2_specs_are_checked() {
        let checked =
            |json: &str| serde_json::from_str::<FaultSpec>(json).map(|s| s.check().is_ok());
        for good in [
            r#"{"code2":"transient"}"#,
            r#"{"code2":"misconfigured","status":503,"calls":["me","accounts"]}"#,
        ] {
            assert!(checked(good).unwrap(), "{good}");
        }
        for bad in [
            r#"{"code2":"misconfigured","status":200}"#,
            r#"{"code2":"transient","body":"x"}"#,
            r#"{"code2":"transient","calls":[]}"#,
            r#"{"code2":"transient","calls":["nope"]}"#,
        ] {
            assert!(!checked(bad).unwrap(), "{bad}");
        }
        assert!(checked(r#"{"code2":"maybe"}"#).is_err());
    }
}
