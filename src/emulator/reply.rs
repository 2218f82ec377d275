//! Graph-shaped reply bodies and the headers graph.accountkit.com sent.
//!
//! Bodies are serialised from structs (field order = key order) so that they
//! match the recorded bytes exactly, apart from the random trace id.

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

/// The content type of every reply.
pub(crate) const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// `Cache-Control` on successful replies.
pub(crate) const CACHE_OK: &str = "private, no-cache, no-store, must-revalidate";
/// `Cache-Control` on error replies.
pub(crate) const CACHE_ERR: &str = "no-store";
/// The trace id header (same value as the body's `fbtrace_id`).
pub(crate) const TRACE_HEADER: &str = "x-fb-trace-id";

/// A fresh 11-character alphanumeric trace id (the 2016 format).
pub(crate) fn trace_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 11)
}

/// A Graph error, before it gets its trace id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) kind: &'static str,
    pub(crate) is_transient: Option<bool>,
    pub(crate) code: u32,
    pub(crate) subcode: Option<u32>,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_transient: Option<bool>,
    code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_subcode: Option<u32>,
    fbtrace_id: &'a str,
}

impl GraphError {
    fn new(status: StatusCode, kind: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            is_transient: None,
            code,
            subcode: None,
        }
    }

    fn subcode(mut self, subcode: u32) -> Self {
        self.subcode = Some(subcode);
        self
    }

    /// Recorded: unknown user access token.
    pub(crate) fn invalid_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            190,
            "Invalid OAuth access token.",
        )
    }

    /// Modelled on Graph: a token whose session was invalidated
    /// (subcode 460 for invalidate_all_tokens / account deletion, 467 for logout).
    pub(crate) fn dead_token(subcode: u32) -> Self {
        let message = match subcode {
            467 => "Error validating access token: The session is invalid because the user logged out.",
            _ => "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.",
        };
        Self::new(StatusCode::BAD_REQUEST, "OAuthException", 190, message).subcode(subcode)
    }

    /// Recorded: unknown / other app's authorization code.
    pub(crate) fn invalid_code() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            1,
            "Invalid verification code",
        )
    }

    /// Recorded message: a code exchanged twice (code 1 chosen like the invalid code).
    pub(crate) fn code_used() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            1,
            "This authorization code has been used",
        )
    }

    /// Modelled: a code older than the code lifetime.
    pub(crate) fn code_expired() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            1,
            "This authorization code has expired",
        )
    }

    /// Recorded: wrong app id or secret in an `AA|…|…` token (HTTP 500, code 2).
    pub(crate) fn service_unavailable(status: StatusCode) -> Self {
        let mut e = Self::new(
            status,
            "EMApiException",
            2,
            "Service temporarily unavailable",
        );
        e.is_transient = Some(true);
        e
    }

    /// Graph's outage answer (code 2, transient): what graph.facebook.com
    /// answered while down; no Account Kit outage was recorded.
    pub(crate) fn unexpected_error(status: StatusCode) -> Self {
        let mut e = Self::new(
            status,
            "OAuthException",
            2,
            "An unexpected error has occurred. Please retry your request later.",
        );
        e.is_transient = Some(true);
        e
    }

    /// Graph: missing appsecret_proof.
    pub(crate) fn proof_missing() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "GraphMethodException",
            100,
            "API calls from the server require an appsecret_proof argument.",
        )
    }

    /// Graph: wrong appsecret_proof.
    pub(crate) fn proof_invalid() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "GraphMethodException",
            100,
            "Invalid appsecret_proof provided in the API argument",
        )
    }

    /// Graph: `/me` without a user token.
    pub(crate) fn no_active_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            2500,
            "An active access token must be used to query information about the current user.",
        )
    }

    /// Graph: an admin call without an app access token with the app secret.
    pub(crate) fn app_token_required() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            15,
            "(#15) This method must be called with an app access_token.",
        )
    }

    /// Graph: unknown path components.
    pub(crate) fn unknown_path(rest: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            2500,
            format!("Unknown path components: {rest}"),
        )
    }

    /// Graph: unsupported method on an object, or an object that does not
    /// exist / is not visible to the caller (code 100, subcode 33).
    pub(crate) fn unsupported(method: &str, id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "GraphMethodException",
            100,
            format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                method.to_ascii_lowercase()
            ),
        )
        .subcode(33)
    }

    /// Graph: an invalid parameter (code 100).
    pub(crate) fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "OAuthException", 100, message)
    }

    /// Graph: rate limited (code 4, transient).
    pub(crate) fn rate_limited(status: StatusCode) -> Self {
        let mut e = Self::new(
            status,
            "OAuthException",
            4,
            "(#4) Application request limit reached",
        );
        e.is_transient = Some(true);
        e
    }

    /// Graph: unknown error (code 1).
    pub(crate) fn unknown(status: StatusCode) -> Self {
        Self::new(
            status,
            "OAuthException",
            1,
            "An unknown error has occurred.",
        )
    }

    /// The error body for a trace id.
    pub(crate) fn body(&self, trace: &str) -> String {
        let env = ErrorEnvelope {
            error: ErrorObject {
                message: &self.message,
                kind: self.kind,
                is_transient: self.is_transient,
                code: self.code,
                error_subcode: self.subcode,
                fbtrace_id: trace,
            },
        };
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string(&env).unwrap_or_default()
    }

    /// The full HTTP reply.
    pub(crate) fn response(&self) -> HttpResponse {
        let trace = trace_id();
        let challenge = if self.code == 190 {
            r#"OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token.""#.to_owned()
        } else {
            format!(
                r#"OAuth "Facebook Platform" "invalid_request" "{}""#,
                header_safe(&self.message)
            )
        };
        let mut res = HttpResponse::build(self.status);
        res.insert_header((CONTENT_TYPE, JSON_UTF8))
            .insert_header((CACHE_CONTROL, CACHE_ERR))
            .insert_header((TRACE_HEADER, trace.as_str()));
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.insert_header((WWW_AUTHENTICATE, v));
        }
        res.body(self.body(&trace))
    }
}

/// Keeps a message usable inside a quoted header parameter: printable ASCII,
/// with `"` and `\` escaped.
fn header_safe(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// A 200 reply with a JSON body already serialised.
pub(crate) fn ok(body: String) -> HttpResponse {
    raw(StatusCode::OK, body)
}

/// A reply with any status and a raw body, with the success headers for
/// status < 400 and the error `Cache-Control` otherwise.
pub(crate) fn raw(status: StatusCode, body: String) -> HttpResponse {
    let cache = if status.as_u16() >= 400 {
        CACHE_ERR
    } else {
        CACHE_OK
    };
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, JSON_UTF8))
        .insert_header((CACHE_CONTROL, cache))
        .insert_header((TRACE_HEADER, trace_id()))
        .body(body)
}

/// A JSON string literal, with `@` escaped as `\u0040` the way the recorded
/// email bodies had it.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace('@', "\\u0040")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_error_bytes() {
        assert_eq!(
            GraphError::invalid_token().body("CeRr0HW5x07"),
            r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"CeRr0HW5x07"}}"#
        );
        assert_eq!(
            GraphError::service_unavailable(StatusCode::INTERNAL_SERVER_ERROR).body("C4erpIHwfYY"),
            r#"{"error":{"message":"Service temporarily unavailable","type":"EMApiException","is_transient":true,"code":2,"fbtrace_id":"C4erpIHwfYY"}}"#
        );
        assert_eq!(
            GraphError::unexpected_error(StatusCode::INTERNAL_SERVER_ERROR).body("HbP+i+BdlMX"),
            r#"{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","is_transient":true,"code":2,"fbtrace_id":"HbP+i+BdlMX"}}"#
        );
        assert_eq!(
            GraphError::invalid_code().body("FNXWBWxiz3p"),
            r#"{"error":{"message":"Invalid verification code","type":"OAuthException","code":1,"fbtrace_id":"FNXWBWxiz3p"}}"#
        );
    }

    #[test]
    fn email_is_escaped_like_the_recording() {
        assert_eq!(json_str("test@example.com"), r#""test\u0040example.com""#);
    }

    #[test]
    fn header_values_stay_printable() {
        assert_eq!(header_safe("a\"b\u{1}é"), "a\\\"b??");
    }
}
