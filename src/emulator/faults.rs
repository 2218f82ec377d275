//! Fault injection: what a fault posted to `/_emulator/faults` does to the
//! real-API calls that follow (latency, a canned status or body, how many
//! calls, after how many). The control endpoint only parses and stores it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use super::reply::{self, GraphError};

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
    times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
}

impl FaultSpec {
    /// Why the spec cannot be applied, if it cannot.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        match self.status {
            Some(s) if !(100..=599).contains(&s) => Err("status must be 100–599"),
            _ => Ok(()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.latency_ms.is_none() && self.status.is_none() && self.body.is_none()
    }
}

/// What to do to one real-API call.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) latency: Option<Duration>,
    /// `Some` when the call must not be processed but answered with this.
    pub(crate) reply: Option<(StatusCode, Option<String>)>,
}

impl Applied {
    /// The canned reply of a faulted call.
    pub(crate) fn response(status: StatusCode, body: Option<&str>) -> HttpResponse {
        match body {
            Some(b) => reply::raw(status, b.to_owned()),
            None if status.as_u16() >= 400 => default_fault_error(status).response(),
            None => reply::raw(status, String::new()),
        }
    }
}

/// A Graph error body that fits an injected status.
fn default_fault_error(status: StatusCode) -> GraphError {
    match status.as_u16() {
        429 => GraphError::rate_limited(status),
        500..=599 => GraphError::service_unavailable(status),
        _ => GraphError::unknown(status),
    }
}

/// The active fault, if any.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    active: Option<FaultSpec>,
}

impl Faults {
    /// Consumes one real-API call from the fault budget.
    pub(crate) fn next_call(&mut self) -> Option<Applied> {
        let spec = self.active.as_mut()?;
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
            reply: spec
                .status
                .or(spec.body.as_ref().map(|_| 200))
                .and_then(|s| StatusCode::from_u16(s).ok())
                .map(|s| (s, spec.body.clone())),
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
        assert!(f.next_call().is_none());
        assert!(f.next_call().is_some());
        assert!(f.next_call().is_some());
        assert!(f.next_call().is_none());
        assert!(f.active.is_none());
    }

    #[test]
    fn unlimited_until_cleared() {
        let mut f = faults(FaultSpec {
            latency_ms: Some(5),
            ..FaultSpec::default()
        });
        for _ in 0..100 {
            let a = f.next_call().unwrap();
            assert_eq!(a.latency, Some(Duration::from_millis(5)));
            assert!(a.reply.is_none());
        }
    }
}
