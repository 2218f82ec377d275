//! The crate's error type.
//!
//! One [`Error`] for every call of the Graph client and the admin client. A
//! refusal by Account Kit is [`Error::Graph`], carrying the Graph error
//! object; classify it by `code` (and `error_subcode`), never by `type` or
//! `message`: the type changed from `OAuthException` to `EMApiException` for
//! the same code 190.
//!
//! No error ever contains the app secret, the client token or a user access
//! token: transport errors lose their URL (whose query string may carry
//! them), decoding errors keep only the position of the fault, and text that
//! came back from the network is scrubbed of every secret the request used.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde::Deserialize;

/// Graph code: the user access token is invalid, expired or logged out.
pub const CODE_INVALID_TOKEN: i64 = 190;
/// Graph code: the authorization code is invalid, expired or used.
pub const CODE_INVALID_CODE: i64 = 1;
/// Graph code 2 has two meanings: Graph's "service temporarily unavailable"
/// (an outage, `is_transient: true`), and what Account Kit answered for a
/// wrong app id or app secret (with the same `is_transient: true`). The
/// client retries it like other transient errors, a bounded number of
/// times; [`GraphVerifier`](crate::verify::GraphVerifier)'s credential
/// self-check tells the two apart ([`Error::CredentialsRefused`]).
pub const CODE_APP_MISCONFIGURED: i64 = 2;
/// Graph code: a bad parameter, including a missing or wrong `appsecret_proof`.
pub const CODE_INVALID_PARAMETER: i64 = 100;
/// Graph code: application request limit reached.
pub const CODE_RATE_LIMITED: i64 = 4;

/// A handler may return the admin client's errors with `?`: a refused
/// token is 401 `invalid_token` (RFC 6750), a refused code 400
/// `invalid_grant`, bad input 400 `invalid_request`; Account Kit down, slow,
/// rate limiting or refusing our credentials is 503 with `Retry-After`; an
/// answer that makes no sense is 502. The body is `{"error",
/// "error_description"}` and never repeats Account Kit's own text.
impl actix_web::ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.answer().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, error, description) = self.answer();
        if status.is_server_error() {
            tracing::warn!(error = %self, %status, "Account Kit call failed");
        }
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match status {
            StatusCode::UNAUTHORIZED => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"accountkit\", error=\"invalid_token\"",
                ));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        response.json(serde_json::json!({
            "error": error,
            "error_description": description,
        }))
    }
}

impl Error {
    /// Status, error code and description of the HTTP answer to this error.
    fn answer(&self) -> (StatusCode, &'static str, &'static str) {
        const UNAVAILABLE: (StatusCode, &str, &str) = (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "Account Kit cannot be reached right now; retry later",
        );
        match self {
            e if e.is_invalid_token() => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is invalid, expired or logged out",
            ),
            e if e.is_invalid_code() => (
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the authorization code is invalid, expired or already used",
            ),
            Error::InvalidLimit { .. } | Error::InvalidAccountId => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the account id or page size is not valid",
            ),
            Error::Config(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the server's Account Kit configuration is not usable",
            ),
            e if e.is_unavailable() || e.is_app_misconfigured() => UNAVAILABLE,
            Error::Aborted | Error::CredentialsRefused { .. } => UNAVAILABLE,
            _ => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "Account Kit answered something this server cannot use",
            ),
        }
    }
}

/// Why a request could not be sent or its answer not received. Opaque, as
/// `reqwest` keeps its own internals: the HTTP library is not part of this
/// crate's API. [`std::error::Error::source`] reaches the underlying error.
pub struct TransportError(reqwest::Error);

impl TransportError {
    /// Whether connecting failed (refused, unreachable, TLS handshake).
    pub fn is_connect(&self) -> bool {
        self.0.is_connect()
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL was stripped when the error was made.
        f.debug_tuple("TransportError").field(&self.0).finish()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Anything that can go wrong talking to Account Kit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Account Kit answered with a Graph error object.
    #[error(transparent)]
    Graph(Box<GraphError>),
    /// No answer within the configured per-attempt timeout.
    #[error("Account Kit did not answer within {after:?}")]
    Timeout {
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The request could not be sent or its answer not received (connection
    /// refused or reset, TLS, DNS...). The URL is stripped from the source.
    #[error("could not reach Account Kit: {0}")]
    Transport(#[source] TransportError),
    /// The answer could not be understood: not JSON, the wrong shape, or an
    /// error status without a Graph error object.
    #[error("unreadable answer from Account Kit (HTTP {status}): {detail}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong, without any of the body's content.
        detail: String,
    },
    /// The answer came from another address than the one asked: the HTTP
    /// client followed a redirect (a client given to the deprecated
    /// `GraphClient::with_http_client`). Not trusted, not retried. No URL
    /// in it: a read's query string holds the token.
    #[error(
        "the answer came from another address than the one asked (the HTTP client followed a \
         redirect; build it with GraphClient::with_http_client_builder)"
    )]
    Redirected,
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A page size outside 1..=1000, refused before any request was made.
    #[error("limit {limit} is outside the range 1-1000")]
    InvalidLimit {
        /// The refused limit.
        limit: u32,
    },
    /// An account id that is not a decimal string, refused before any
    /// request was made (it becomes part of the URL path).
    #[error("an account id must be a non-empty decimal string of at most 32 digits")]
    InvalidAccountId,
    /// A verification was cut short before it could answer: the task
    /// running it panicked or its runtime shut down.
    #[error("the verification was aborted before Account Kit answered")]
    Aborted,
    /// Account Kit refused this app's credentials: an app-token call was
    /// refused (code 2 or 190) while the service answered a credential-free
    /// probe ([`GraphClient::check_service`](crate::client::GraphClient::check_service)),
    /// so the app id or the Account Kit app secret is wrong. Found by
    /// [`GraphVerifier`](crate::verify::GraphVerifier)'s self-check; the
    /// secret itself is never shown.
    #[error("Account Kit refused app id {app_id}'s app secret: {source}")]
    CredentialsRefused {
        /// The app id whose secret was refused (an id is not a secret).
        app_id: String,
        /// How the app-token call was refused.
        #[source]
        source: Arc<Error>,
    },
}

impl Error {
    /// The Graph error object, if Account Kit answered with one.
    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Graph(e) => Some(e),
            _ => None,
        }
    }

    /// Code 190: the user token is invalid, expired or logged out.
    pub fn is_invalid_token(&self) -> bool {
        self.graph().is_some_and(GraphError::is_invalid_token)
    }

    /// Code 1: the authorization code is invalid, expired or already used.
    pub fn is_invalid_code(&self) -> bool {
        self.graph().is_some_and(GraphError::is_invalid_code)
    }

    /// Code 2: Account Kit is down, or the app id or app secret is wrong
    /// (it answered both with code 2; see [`CODE_APP_MISCONFIGURED`]).
    /// Already retried by the client when it reaches you.
    pub fn is_app_misconfigured(&self) -> bool {
        self.graph().is_some_and(GraphError::is_app_misconfigured)
    }

    /// Code 100: a bad parameter, e.g. a missing or wrong `appsecret_proof`.
    pub fn is_invalid_parameter(&self) -> bool {
        self.graph().is_some_and(GraphError::is_invalid_parameter)
    }

    /// Code 4 or HTTP 429: rate limited.
    pub fn is_rate_limited(&self) -> bool {
        self.graph().is_some_and(GraphError::is_rate_limited)
    }

    /// A timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Account Kit refused this app's credentials:
    /// [`Error::CredentialsRefused`].
    pub fn is_credentials_refused(&self) -> bool {
        matches!(self, Error::CredentialsRefused { .. })
    }

    /// The service could not be reached or did not answer sensibly: a
    /// timeout, a transport failure, an unreadable answer, a 5xx other than
    /// code 2, or rate limiting. The request may succeed later. (Code 2 is
    /// either an outage or our credentials refused:
    /// [`is_app_misconfigured`](Self::is_app_misconfigured).)
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Transport(_) | Error::Decode { .. } | Error::Aborted => {
                true
            }
            Error::Graph(g) => {
                g.is_rate_limited() || (g.status >= 500 && !g.is_app_misconfigured())
            }
            Error::Redirected
            | Error::Config(_)
            | Error::InvalidLimit { .. }
            | Error::InvalidAccountId
            | Error::CredentialsRefused { .. } => false,
        }
    }

    /// Whether an idempotent read that failed this way may be retried:
    /// transport errors, 5xx answers, code 2 whatever its status, and rate
    /// limiting; see [`RetryPolicy`](crate::config::RetryPolicy).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Decode { status, .. } => *status >= 500 || *status == 429,
            Error::Graph(g) => g.is_rate_limited() || g.is_app_misconfigured() || g.status >= 500,
            Error::Timeout { .. }
            | Error::Aborted
            | Error::Redirected
            | Error::Config(_)
            | Error::InvalidLimit { .. }
            | Error::InvalidAccountId
            | Error::CredentialsRefused { .. } => false,
        }
    }

    /// Whether the failure shows that the call was not carried out, so that
    /// even a call that is not idempotent in its answer (a write, the code
    /// exchange) may be sent again: Account Kit answered code 2 ("service
    /// temporarily unavailable", or our credentials refused) or rate
    /// limiting (code 4, HTTP 429), or no connection could be made. Not a
    /// timeout, a connection lost mid-call, or a 5xx without a Graph error
    /// (a proxy's), after which the call may have been carried out.
    pub(crate) fn shows_not_carried_out(&self) -> bool {
        match self {
            Error::Transport(e) => e.is_connect(),
            Error::Decode { status, .. } => *status == 429,
            Error::Graph(g) => g.is_rate_limited() || g.is_app_misconfigured(),
            _ => false,
        }
    }

    pub(crate) fn transport(err: reqwest::Error, timeout: Duration) -> Self {
        if err.is_timeout() {
            Error::Timeout { after: timeout }
        } else {
            Error::Transport(TransportError(err.without_url()))
        }
    }

    pub(crate) fn decode(status: u16, err: &serde_json::Error) -> Self {
        // serde_json's Display may quote the offending value (a token, say):
        // keep only the category and the position.
        let category = match err.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "JSON of the wrong shape",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        Error::Decode {
            status,
            detail: format!("{category} at line {} column {}", err.line(), err.column()),
        }
    }
}

impl From<GraphError> for Error {
    fn from(e: GraphError) -> Self {
        Error::Graph(Box::new(e))
    }
}

/// A configuration mistake, found before any request was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The API version does not match `^v\d+\.\d+$`.
    #[error("API version {version:?} does not look like v<major>.<minor>, e.g. v1.3")]
    InvalidVersion {
        /// The refused version (at most 32 characters of it).
        version: String,
    },
    /// The app id is empty or not decimal.
    #[error("the app id must be the decimal Facebook app id")]
    InvalidAppId,
    /// The app secret is empty or has characters outside printable ASCII.
    #[error("the app secret must be non-empty printable ASCII")]
    InvalidAppSecret,
    /// The client token is empty or has characters outside printable ASCII.
    #[error("the client token must be non-empty printable ASCII")]
    InvalidClientToken,
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid base URL: {reason}")]
    InvalidBaseUrl {
        /// Why it was refused.
        reason: &'static str,
    },
    /// A zero timeout.
    #[error("the request timeout must be greater than zero")]
    InvalidTimeout,
    /// The HTTP client could not be built (TLS backend).
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
    /// A cache setting out of range.
    #[error("cache setting {setting} must be {expected}")]
    InvalidCacheSetting {
        /// The setting's name (its builder method).
        setting: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A realm with characters outside printable ASCII.
    #[error("the realm must be printable ASCII")]
    InvalidRealm,
    /// An empty list of token sources.
    #[error("at least one token source is needed")]
    NoTokenSource,
    /// Something else in the configuration.
    #[error("{0}")]
    Other(&'static str),
    /// A required environment variable is unset or empty
    /// ([`Config::from_env`](crate::config::Config::from_env)).
    #[error("environment variable {variable} is not set")]
    MissingEnvVar {
        /// The variable's name, e.g. `ACCOUNTKIT_APP_ID`.
        variable: &'static str,
    },
    /// An environment variable holds a value that is not usable. The value
    /// itself is never included (it may be a secret).
    #[error("environment variable {variable} is not valid: {source}")]
    InvalidEnvVar {
        /// The variable's name, e.g. `ACCOUNTKIT_API_VERSION`.
        variable: &'static str,
        /// What is wrong with it.
        #[source]
        source: Box<ConfigError>,
    },
    /// Two environment variables that cannot be set together, e.g.
    /// `ACCOUNTKIT_EMULATOR_HOST` and `ACCOUNTKIT_BASE_URL`.
    #[error("environment variables {first} and {second} cannot both be set: {why}")]
    ConflictingEnvVars {
        /// One of the variables.
        first: &'static str,
        /// The other.
        second: &'static str,
        /// Why they conflict, and what to do.
        why: &'static str,
    },
}

/// Why [`AccountKit::check`](crate::AccountKit::check) failed: the start-up
/// check of the app id, the app secret and the endpoint.
///
/// [`Credentials`](Self::Credentials) (the service answered and refused them)
/// and [`ServiceShutDown`](Self::ServiceShutDown) (the default endpoint,
/// where nothing will ever answer again) are definite: a server should not
/// start ([`is_definite`](Self::is_definite)). The others may pass later
/// (an outage during a deploy must not crash-loop a fleet): warn and serve.
/// No variant ever contains the app secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Account Kit refused the app id or the app secret (code 2 to an
    /// app-token call while the service answers a call without credentials,
    /// or the app token refused as invalid); the source is
    /// [`Error::CredentialsRefused`].
    #[error(
        "Account Kit refused the credentials of app {app_id}: the Account Kit app secret \
         is wrong for this app id (or the app id is wrong). Use the app's Account Kit \
         app secret, not its Facebook app secret ({source})"
    )]
    Credentials {
        /// The configured app id.
        app_id: String,
        /// The refusal, scrubbed of secrets.
        #[source]
        source: Error,
    },
    /// The configured endpoint could not be reached or did not answer
    /// sensibly (connection refused, DNS, TLS, timeout, 5xx, rate limiting,
    /// an unreadable answer).
    #[error("Account Kit at {base_url} cannot be reached or is unavailable: {source}")]
    Unreachable {
        /// The configured endpoint.
        base_url: String,
        /// What happened.
        #[source]
        source: Error,
    },
    /// The endpoint is the default one, graph.accountkit.com, and the check
    /// failed without a credentials refusal: the real service was shut down.
    #[error(
        "Account Kit at {base_url} did not answer: the real Account Kit service was shut \
         down, so nothing answers there any more. Point the crate at an Account Kit \
         emulator instead: the crate's own (the `accountkit-emulator` command, from \
         `cargo install actix-accountkit --features cli`, or in process with cargo \
         feature `emulator`, `actix_accountkit::emulator::Emulator`), with \
         ACCOUNTKIT_EMULATOR_HOST=host:port or Config::builder(..).base_url(..) ({source})"
    )]
    ServiceShutDown {
        /// The configured endpoint (the default one).
        base_url: String,
        /// What happened.
        #[source]
        source: Error,
    },
    /// The endpoint answered the check with an error that is neither a
    /// credentials refusal nor an outage (e.g. a bad parameter).
    #[error("Account Kit at {base_url} refused the credentials check: {source}")]
    Unexpected {
        /// The configured endpoint.
        base_url: String,
        /// The answer.
        #[source]
        source: Error,
    },
}

impl CheckError {
    /// Whether the answer is definite, so that a server should not start:
    /// the credentials were refused ([`Credentials`](Self::Credentials)), or
    /// the endpoint is the real service, which was shut down
    /// ([`ServiceShutDown`](Self::ServiceShutDown)). Trying again later
    /// cannot pass.
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            CheckError::Credentials { .. } | CheckError::ServiceShutDown { .. }
        )
    }

    /// Whether the app id or secret was refused.
    pub fn is_credentials(&self) -> bool {
        matches!(self, CheckError::Credentials { .. })
    }

    /// Whether the endpoint could not be reached ([`Unreachable`](Self::Unreachable)
    /// or [`ServiceShutDown`](Self::ServiceShutDown)).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            CheckError::Unreachable { .. } | CheckError::ServiceShutDown { .. }
        )
    }

    /// The underlying error of the check.
    pub fn error(&self) -> &Error {
        match self {
            CheckError::Credentials { source, .. }
            | CheckError::Unreachable { source, .. }
            | CheckError::ServiceShutDown { source, .. }
            | CheckError::Unexpected { source, .. } => source,
        }
    }
}

/// A Graph error object, as Account Kit sent it, plus the HTTP status.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct GraphError {
    /// HTTP status of the answer.
    #[serde(skip)]
    pub status: u16,
    /// The Graph error code; see the `CODE_*` constants.
    pub code: i64,
    /// The Graph error subcode, when present (e.g. 460/467 for a session
    /// that was invalidated, 463 for an expired one).
    #[serde(default)]
    pub error_subcode: Option<i64>,
    /// `type`, e.g. `OAuthException` or `EMApiException`; do not match on it.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Human-readable message, scrubbed of secrets.
    #[serde(default)]
    pub message: String,
    /// Whether the service called the error transient (code 2 claims so
    /// for an outage, and also, wrongly, for a misconfigured app, which
    /// stays misconfigured).
    #[serde(default)]
    pub is_transient: bool,
    /// The trace id support asked for.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
    /// `error_user_title`, when present.
    #[serde(default)]
    pub error_user_title: Option<String>,
    /// `error_user_msg`, when present.
    #[serde(default)]
    pub error_user_msg: Option<String>,
}

impl GraphError {
    /// Code 190.
    pub fn is_invalid_token(&self) -> bool {
        self.code == CODE_INVALID_TOKEN
    }
    /// Code 1.
    pub fn is_invalid_code(&self) -> bool {
        self.code == CODE_INVALID_CODE
    }
    /// Code 2: an outage, or our credentials refused (see
    /// [`CODE_APP_MISCONFIGURED`]).
    pub fn is_app_misconfigured(&self) -> bool {
        self.code == CODE_APP_MISCONFIGURED
    }
    /// Code 100.
    pub fn is_invalid_parameter(&self) -> bool {
        self.code == CODE_INVALID_PARAMETER
    }
    /// Code 4, or HTTP 429 whatever the code.
    pub fn is_rate_limited(&self) -> bool {
        self.code == CODE_RATE_LIMITED || self.status == 429
    }

    /// Removes the given secrets from the free-text fields (Graph has echoed
    /// malformed tokens back in messages). An exact occurrence is replaced
    /// by `[redacted]`; a field that still holds a secret in another form
    /// (percent- or form-encoded, once or twice, in another letter case,
    /// as a proof's hex can be) is replaced whole.
    pub(crate) fn scrub<'a>(&mut self, secrets: impl IntoIterator<Item = &'a str>) {
        let secrets: Vec<&str> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        for field in [
            Some(&mut self.message),
            self.error_user_msg.as_mut(),
            self.error_user_title.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            for secret in &secrets {
                if field.contains(secret) {
                    *field = field.replace(secret, "[redacted]");
                }
            }
            if secrets.iter().any(|secret| hides(field, secret)) {
                *field = "[redacted: Account Kit's message quoted a secret]".to_owned();
            }
        }
    }
}

/// Whether `text` holds `secret` in an encoded form: percent- or
/// form-decoded up to twice, compared without regard to ASCII case.
fn hides(text: &str, secret: &str) -> bool {
    let secret = secret.to_ascii_lowercase();
    let mut text = text.to_ascii_lowercase().into_bytes();
    for _ in 0..3 {
        if text.windows(secret.len()).any(|w| w == secret.as_bytes()) {
            return true;
        }
        text = percent_decode(&text).to_ascii_lowercase();
    }
    false
}

/// `%XX` → the byte, `+` → space; anything else as is.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

impl fmt::Debug for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphError")
            .field("status", &self.status)
            .field("code", &self.code)
            .field("error_subcode", &self.error_subcode)
            .field("type", &self.kind)
            .field("message", &self.message)
            .field("is_transient", &self.is_transient)
            .field("fbtrace_id", &self.fbtrace_id)
            .finish()
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Account Kit error (HTTP {}, code {}",
            self.status, self.code
        )?;
        if let Some(sub) = self.error_subcode {
            write!(f, ", subcode {sub}")?;
        }
        write!(f, "): {}", self.message)?;
        if let Some(trace) = &self.fbtrace_id {
            write!(f, " [fbtrace_id {trace}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphError {}

/// `{"error": {...}}`
#[derive(Deserialize)]
pub(crate) struct GraphErrorEnvelope {
    pub(crate) error: GraphError,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    fn graph(status: u16, code: i64) -> Error {
        let body = format!(
            r#"{{"error":{{"message":"m","type":"OAuthException","code":{code},"fbtrace_id":"T"}}}}"#
        );
        let mut envelope: GraphErrorEnvelope = serde_json::from_str(&body).unwrap();
        envelope.error.status = status;
        envelope.error.into()
    }

    #[test]
    fn check_errors_are_classified_and_the_default_endpoint_says_shut_down() {
        use crate::config::Config;
        let secret = "9bdc9ae47c4211b9919a036c1e1bc477";
        let default = Config::builder("1234", secret).build().unwrap();
        let emulator = Config::builder("1234", secret)
            .base_url("http://127.0.0.1:8787")
            .build()
            .unwrap();
        let timeout = || Error::Timeout {
            after: Duration::from_secs(1),
        };
        let shut = crate::kit::classify_check(&default, timeout());
        assert!(
            matches!(shut, CheckError::ServiceShutDown { .. }),
            "{shut:?}"
        );
        assert!(shut.is_unreachable() && shut.is_definite() && !shut.is_credentials());
        let text = shut.to_string();
        for needle in [
            "shut down",
            "emulator",
            "ACCOUNTKIT_EMULATOR_HOST",
            "graph.accountkit.com",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        // Unreadable answers at the default address: still the shutdown.
        let decode = Error::Decode {
            status: 404,
            detail: "not valid JSON".into(),
        };
        assert!(matches!(
            crate::kit::classify_check(&default, decode),
            CheckError::ServiceShutDown { .. }
        ));
        let down = crate::kit::classify_check(&emulator, timeout());
        assert!(matches!(down, CheckError::Unreachable { .. }), "{down:?}");
        assert!(!down.is_definite());
        assert!(!down.to_string().contains("shut down"));
        // A code 2 the self-check could not explain (the service answered
        // code 2 without credentials too) is an outage; a refusal the check
        // confirmed is definite.
        let outage = crate::kit::classify_check(&emulator, graph(500, 2));
        assert!(
            matches!(outage, CheckError::Unreachable { .. }),
            "{outage:?}"
        );
        assert!(!outage.is_definite());
        let confirmed = Error::CredentialsRefused {
            app_id: "1234".into(),
            source: Arc::new(graph(500, 2)),
        };
        let refused = crate::kit::classify_check(&emulator, confirmed);
        assert!(refused.is_credentials() && refused.is_definite());
        assert!(refused.to_string().contains("1234"));
        assert!(refused.to_string().contains("Account Kit app secret"));
        assert!(!format!("{refused} {refused:?}").contains(secret));
        assert!(matches!(
            crate::kit::classify_check(&emulator, graph(400, 100)),
            CheckError::Unexpected { .. }
        ));
        assert!(matches!(
            crate::kit::classify_check(&emulator, graph(503, 1)),
            CheckError::Unreachable { .. }
        ));
    }

    #[test]
    fn handlers_answer_errors_with_the_right_status() {
        let cases = [
            (graph(400, 190), 401),
            (graph(400, 1), 400),
            (graph(500, 2), 503),
            (graph(429, 4), 503),
            (graph(400, 100), 502),
            (
                Error::Timeout {
                    after: Duration::from_secs(1),
                },
                503,
            ),
            (
                Error::Decode {
                    status: 200,
                    detail: "x".into(),
                },
                503,
            ),
            (Error::InvalidAccountId, 400),
            (Error::InvalidLimit { limit: 0 }, 400),
            (Error::Config(ConfigError::InvalidAppId), 500),
            (Error::Aborted, 503),
            (
                Error::CredentialsRefused {
                    app_id: "390265671523337".into(),
                    source: Arc::new(graph(500, 2)),
                },
                503,
            ),
        ];
        for (error, status) in cases {
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            let headers = response.headers();
            assert_eq!(
                headers.contains_key(header::WWW_AUTHENTICATE),
                status == 401
            );
            assert_eq!(headers.contains_key(header::RETRY_AFTER), status == 503);
            assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        }
    }

    #[test]
    fn code_2_is_retried_and_shows_the_call_was_not_carried_out() {
        for status in [400, 500, 503] {
            let e = graph(status, 2);
            assert!(e.is_retryable() && e.shows_not_carried_out(), "{status}");
            assert!(e.is_app_misconfigured() && !e.is_unavailable());
        }
        assert!(graph(400, 4).shows_not_carried_out());
        let proxy = Error::Decode {
            status: 503,
            detail: "an error status without a JSON body".into(),
        };
        assert!(proxy.is_retryable() && !proxy.shows_not_carried_out());
        let timeout = Error::Timeout {
            after: Duration::from_secs(1),
        };
        assert!(!timeout.is_retryable() && !timeout.shows_not_carried_out());
        assert!(!graph(400, 190).shows_not_carried_out());
    }

    #[test]
    fn refused_credentials_name_the_app_not_the_secret() {
        let e = Error::CredentialsRefused {
            app_id: "390265671523337".into(),
            source: Arc::new(graph(500, 2)),
        };
        assert!(e.is_credentials_refused() && !e.is_app_misconfigured());
        assert!(!e.is_retryable() && !e.is_unavailable());
        let shown = e.to_string();
        assert!(
            shown.starts_with("Account Kit refused app id 390265671523337's app secret: "),
            "{shown}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
