//! Helpers for your own tests on the emulator, with no hand-written HTTP:
//! log a user in by phone or by email and get the code and the token, set
//! and clear faults, read the call counters.
//!
//! [`EmulatorControl`] drives the control endpoints (`/_emulator/…`, see
//! the [emulator's docs](super)) of an emulator in this process ([`Emulator::control`]) or of one
//! elsewhere, e.g. the `accountkit-emulator` command
//! ([`EmulatorControl::new`] with the URL it printed).
//!
//! ```
//! use actix_accountkit::emulator::{Emulator, EmulatorApp, Fault};
//! use actix_accountkit::{AccountKit, Config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::builder()
//!     .app(EmulatorApp::new("390265671523337", "app-secret"))
//!     .build()?;
//! let config = Config::builder("390265671523337", "app-secret")
//!     .base_url(emulator.base_url())
//!     .build()?;
//! let kit = AccountKit::new(config)?;
//!
//! // What the device SDK would get: a code for the server, and a token.
//! let control = emulator.control();
//! let login = control.login_phone("+15555550100").await?;
//! let account = kit.client().me(&login.access_token).await?;
//! assert_eq!(account.id, login.account_id);
//! let by_email = control.login_email("ada@example.com").await?;
//! let exchanged = kit.admin().exchange_code(&by_email.code).await?;
//! assert_eq!(exchanged.id, by_email.account_id);
//!
//! // Real-API calls received (the control calls are not counted).
//! let calls = control.calls().await?;
//! assert_eq!((calls.me, calls.access_token), (1, 1));
//! assert_eq!(calls.total(), 2);
//!
//! // Account Kit down behind its proxy until cleared: 503s, then service.
//! control.set_fault(&Fault::new().status(503).body("<html>down</html>")).await?;
//! assert!(kit.client().me(&login.access_token).await.unwrap_err().is_unavailable());
//! control.clear_faults().await?;
//! assert!(kit.client().me(&login.access_token).await.is_ok());
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Emulator;

/// How long a control call may take before it is an error. The control
/// endpoints are never faulted: this only bounds a hung emulator.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest emulator message quoted in an error.
const MAX_MESSAGE: usize = 300;

impl Emulator {
    /// The helpers driving this emulator's control endpoints.
    pub fn control(&self) -> EmulatorControl {
        EmulatorControl {
            base_url: self.base_url().to_owned(),
            app_id: None,
        }
    }
}

/// Drives an emulator's control endpoints (`/_emulator/…`): logins, faults,
/// call counters, app secret resets. Cheap to clone.
///
/// Works from any async runtime (each call makes its own connection, so it
/// is tied to none). See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct EmulatorControl {
    base_url: String,
    /// Logins go to this app; `None`: the emulator's first app.
    app_id: Option<String>,
}

/// What a device login yields: the account, an authorization code (for
/// [`AdminClient::exchange_code`](crate::AdminClient::exchange_code)) and a
/// user access token (what the app sends as `Authorization: Bearer …`).
///
/// `Debug` redacts the code and the token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Login {
    /// The account id (a decimal string). The same phone number or email in
    /// the same app is the same account.
    pub account_id: String,
    /// An authorization code, exchangeable once.
    pub code: String,
    /// A user access token.
    pub access_token: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("account_id", &self.account_id)
            .field("code", &"[redacted]")
            .field("access_token", &"[redacted]")
            .finish()
    }
}

/// A fault for the real-API calls that follow (the control calls are never
/// faulted): let [`after`](Self::after) calls through, then the next
/// [`times`](Self::times) calls (default: every one, until
/// [cleared](EmulatorControl::clear_faults)) wait [`latency`](Self::latency)
/// and, given a [`status`](Self::status) and/or a [`body`](Self::body), are
/// answered with it instead of being processed.
///
/// ```
/// use actix_accountkit::emulator::Fault;
/// use std::time::Duration;
///
/// let slow = Fault::new().latency(Duration::from_secs(2));
/// let rate_limited = Fault::new().status(429).times(3); // Graph's code 4 body
/// let proxy_down = Fault::new().status(502).body("<html>Bad Gateway</html>").after(1);
/// # let _ = (slow, rate_limited, proxy_down);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fault {
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    times: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code2: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calls: Option<Vec<String>>,
}

impl Fault {
    /// A fault that does nothing yet: add what it does.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers with this HTTP status (100–599) instead of processing the
    /// call; without a [`body`](Self::body), a Graph error fitting it (429:
    /// code 4, rate limiting; 5xx: code 2; other errors: code 1). Default is
    /// to process the call.
    #[must_use]
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Answers with this body, verbatim (it need not be JSON), with the
    /// [`status`](Self::status) or 200. Default is a fitting Graph error.
    #[must_use]
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Waits this long before answering (to the millisecond). Default is no
    /// wait.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Faults this many calls, then clears itself. Default is every call
    /// until cleared.
    #[must_use]
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    /// Lets this many calls through first. Default is 0.
    #[must_use]
    pub fn after(mut self, after: u64) -> Self {
        self.after = Some(after);
        self
    }

    /// Answers with Graph's transient code 2 (an outage: "An unexpected
    /// error has occurred. Please retry your request later."), HTTP 500
    /// unless [`status`](Self::status) says otherwise. The client retries
    /// it; the verifier answers 503 once its self-check clears the
    /// credentials.
    #[must_use]
    pub fn code2_transient(mut self) -> Self {
        self.code2 = Some("transient");
        self
    }

    /// Answers with the code 2 Account Kit gave a misconfigured app
    /// ("Service temporarily unavailable", `EMApiException`), HTTP 500
    /// unless [`status`](Self::status) says otherwise.
    #[must_use]
    pub fn code2_misconfigured(mut self) -> Self {
        self.code2 = Some("misconfigured");
        self
    }

    /// Faults only these calls, named as [`Calls`]' fields (`me`,
    /// `access_token`, `logout`, `invalidate_all_tokens`, `delete`,
    /// `accounts`). Default is every call.
    ///
    /// ```
    /// # use actix_accountkit::emulator::Fault;
    /// let outage_on_me = Fault::new().code2_transient().calls(["me"]).times(1);
    /// assert_eq!(
    ///     serde_json::to_string(&outage_on_me).unwrap(),
    ///     r#"{"times":1,"code2":"transient","calls":["me"]}"#
    /// );
    /// ```
    #[must_use]
    pub fn calls<S: Into<String>>(mut self, calls: impl IntoIterator<Item = S>) -> Self {
        self.calls = Some(calls.into_iter().map(Into::into).collect());
        self
    }
}

/// The real-API calls an emulator received, by kind (`GET /_emulator/stats`),
/// faulted ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Calls {
    /// `GET /{v}/me`.
    pub me: u64,
    /// `GET /{v}/access_token` (code exchanges).
    pub access_token: u64,
    /// `POST /{v}/logout`.
    pub logout: u64,
    /// `POST /{v}/{account_id}/invalidate_all_tokens`.
    pub invalidate_all_tokens: u64,
    /// `DELETE /{v}/{account_id}`.
    pub delete: u64,
    /// `GET /{v}/{app_id}/accounts`.
    pub accounts: u64,
}

impl Calls {
    /// Every real-API call received.
    pub fn total(&self) -> u64 {
        self.me
            + self.access_token
            + self.logout
            + self.invalidate_all_tokens
            + self.delete
            + self.accounts
    }
}

/// Why a control call failed. Never contains a secret: the bodies sent
/// (which may carry an app secret) are never quoted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The URL given to [`EmulatorControl::new`] is not an emulator's base
    /// URL.
    #[error("{url:?} is not an emulator base URL: {why}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The emulator could not be reached, or did not answer in time.
    #[error("the emulator at {base_url} cannot be reached: {source}")]
    Unreachable {
        /// The emulator's base URL.
        base_url: String,
        /// What happened.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The emulator refused the call (e.g. a phone number that is not
    /// E.164, an unknown app id, a status out of range).
    #[error("the emulator refused {what}: HTTP {status}: {message}")]
    Refused {
        /// The call, e.g. `POST /_emulator/login`.
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The emulator's message.
        message: String,
    },
    /// The answer is not what an emulator sends (another server at that
    /// URL?).
    #[error("the answer to {what} is not an emulator's: {detail}")]
    Decode {
        /// The call, e.g. `GET /_emulator/stats`.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl EmulatorControl {
    /// The helpers for the emulator at `base_url` (`http://host:port`, as
    /// the `accountkit-emulator` command prints it, or the
    /// [`base_url`](Emulator::base_url) of one in another process).
    ///
    /// ```
    /// use actix_accountkit::emulator::EmulatorControl;
    ///
    /// let control = EmulatorControl::new("http://127.0.0.1:8787")?;
    /// assert_eq!(control.base_url(), "http://127.0.0.1:8787");
    /// assert!(EmulatorControl::new("127.0.0.1:8787").is_err());
    /// # Ok::<(), actix_accountkit::emulator::ControlError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ControlError::InvalidUrl`] for anything but an `http` or `https`
    /// URL with a host and no query or fragment.
    pub fn new(base_url: &str) -> Result<Self, ControlError> {
        let invalid = |why| ControlError::InvalidUrl {
            url: base_url.to_owned(),
            why,
        };
        let url = url::Url::parse(base_url).map_err(|_| invalid("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("expected http://host:port"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(invalid("expected no query, fragment or user"));
        }
        Ok(Self {
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            app_id: None,
        })
    }

    /// The emulator's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The same helpers, with logins in the app `app_id` (one of the
    /// emulator's apps). Default is the emulator's first app.
    #[must_use]
    pub fn app(&self, app_id: impl Into<String>) -> Self {
        Self {
            base_url: self.base_url.clone(),
            app_id: Some(app_id.into()),
        }
    }

    /// Logs a user in by phone number (E.164, e.g. `+15555550100`), as the
    /// device SDK would: a code and a token for the account of that number.
    ///
    /// # Errors
    ///
    /// [`ControlError::Refused`] for a number that is not E.164 or an
    /// unknown app; [`ControlError::Unreachable`] / [`Decode`](ControlError::Decode)
    /// if the emulator cannot be reached or answers something else.
    pub async fn login_phone(&self, phone: &str) -> Result<Login, ControlError> {
        self.login(LoginRequest {
            phone: Some(phone),
            email: None,
            app_id: self.app_id.as_deref(),
        })
        .await
    }

    /// Logs a user in by email address, as the device SDK would: a code and
    /// a token for the account of that address.
    ///
    /// # Errors
    ///
    /// As [`login_phone`](Self::login_phone), for an address that does not
    /// look like `name@example.com`.
    pub async fn login_email(&self, email: &str) -> Result<Login, ControlError> {
        self.login(LoginRequest {
            phone: None,
            email: Some(email),
            app_id: self.app_id.as_deref(),
        })
        .await
    }

    async fn login(&self, request: LoginRequest<'_>) -> Result<Login, ControlError> {
        let what = "POST /_emulator/login";
        let answer = self
            .call(Method::POST, "login", Some(&request), what)
            .await?;
        decode(&answer, what)
    }

    /// Replaces the active fault (one at a time).
    ///
    /// # Errors
    ///
    /// [`ControlError::Refused`] for a status outside 100–599.
    pub async fn set_fault(&self, fault: &Fault) -> Result<(), ControlError> {
        self.call(
            Method::POST,
            "faults",
            Some(fault),
            "POST /_emulator/faults",
        )
        .await
        .map(drop)
    }

    /// Clears the active fault, if any.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unreachable`] if the emulator cannot be reached.
    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.call(
            Method::DELETE,
            "faults",
            NO_BODY,
            "DELETE /_emulator/faults",
        )
        .await
        .map(drop)
    }

    /// The real-API calls received so far, by kind.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unreachable`] if the emulator cannot be reached.
    pub async fn calls(&self) -> Result<Calls, ControlError> {
        let answer = self
            .call(Method::GET, "stats", NO_BODY, "GET /_emulator/stats")
            .await?;
        decode(&answer, "GET /_emulator/stats")
    }

    /// Sets every call counter back to zero.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unreachable`] if the emulator cannot be reached.
    pub async fn reset_calls(&self) -> Result<(), ControlError> {
        self.call(Method::DELETE, "stats", NO_BODY, "DELETE /_emulator/stats")
            .await
            .map(drop)
    }

    /// Resets the Account Kit app secret of `app_id`, as the dashboard's
    /// "Reset" did: app tokens and proofs made with the old one are refused
    /// from then on (to test a rotation).
    ///
    /// # Errors
    ///
    /// [`ControlError::Refused`] for an unknown app or an empty secret.
    pub async fn reset_app_secret(&self, app_id: &str, secret: &str) -> Result<(), ControlError> {
        let path = format!("apps/{app_id}/secret");
        self.call(
            Method::POST,
            &path,
            Some(&json!({ "secret": secret })),
            "POST /_emulator/apps/{app_id}/secret",
        )
        .await
        .map(drop)
    }

    /// One control call: the answer's body when it succeeded.
    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        what: &'static str,
    ) -> Result<Vec<u8>, ControlError> {
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| ControlError::Unreachable {
                base_url: self.base_url.clone(),
                source,
            };
        let http = http().map_err(|e| unreachable(e.into()))?;
        let mut request = http.request(method, format!("{}/_emulator/{path}", self.base_url));
        if let Some(body) = body {
            request = request.json(body);
        }
        // Without the URL: the app id in a path is no secret, but the
        // emulator's address is already in the message.
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(e.without_url().into()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(e.without_url().into()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        #[derive(Deserialize)]
        struct Refusal {
            error: String,
        }
        let message = match serde_json::from_slice::<Refusal>(&bytes) {
            Ok(refusal) => refusal.error,
            Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        Err(ControlError::Refused {
            what,
            status: status.as_u16(),
            message: message.chars().take(MAX_MESSAGE).collect(),
        })
    }
}

/// The body of a control call that sends none.
const NO_BODY: Option<&()> = None;

/// `POST /_emulator/login`: a phone or an email, in an app or the default.
#[derive(Serialize)]
struct LoginRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
}

fn decode<T: DeserializeOwned>(answer: &[u8], what: &'static str) -> Result<T, ControlError> {
    serde_json::from_slice(answer).map_err(|e| ControlError::Decode {
        what,
        detail: e.to_string(),
    })
}

/// The one HTTP client of every [`EmulatorControl`]: no connection pool (a
/// pooled connection belongs to the runtime that opened it, and tests run
/// one runtime each), no proxy (the emulator is a direct peer), no
/// redirects.
fn http() -> Result<&'static reqwest::Client, String> {
    static HTTP: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(CONTROL_TIMEOUT)
            .pool_max_idle_per_host(0)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}
