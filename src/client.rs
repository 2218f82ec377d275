//! The Graph client: one async method per documented Account Kit call.
//!
//! Requests follow the API document: reads are `GET` with their parameters in
//! the query string; `POST` and `DELETE` carry the access token and proof in
//! a urlencoded form body, as the document's curl example does, so that they
//! never sit in a URL. Redirects are not followed (a redirect would forward
//! credentials to wherever it points; [`GraphClient::with_http_client_builder`]
//! turns them off on a client of your own too), and an answer from another
//! address than the one asked is refused. Every attempt of every call goes out
//! through one private function (`send`).
//!
//! # Retries
//!
//! A failed attempt is sent again at most
//! [`RetryPolicy::max_retries`](crate::config::RetryPolicy) times, after a
//! backoff that doubles from `initial_backoff` up to `max_backoff`, with
//! jitter (each wait is drawn from its upper half). What is sent again
//! depends on the call:
//!
//! * **Reads** (`/me`, the accounts listing, and the credential checks):
//!   transport errors, 5xx answers, Graph code 2 whatever its status, and
//!   rate limiting (code 4, HTTP 429). Not timeouts: the attempt already
//!   spent the time budget.
//! * **Writes** (`logout`, `invalidate_all_tokens`, `DELETE`) **and the code
//!   exchange**: only failures that show the call was not carried out
//!   (code 2, rate limiting, a connection that could not be made). The
//!   writes are idempotent in effect at Account Kit (a second logout leaves
//!   the token dead, a second invalidation leaves every token dead, a second
//!   delete leaves the account gone) but not in their answer: per the
//!   emulator's model of Graph (the service never recorded it), a repeated
//!   logout answers code 190 and a repeated delete code 100 "does not
//!   exist". A code is single-use: "This authorization code has been used".
//!   So after a timeout, a connection lost mid-call or a proxy's 5xx (the
//!   call may have been carried out) they are not sent again, lest a
//!   success be reported as a failure.
//!
//! # Code 2
//!
//! Graph error code 2 (`is_transient: true`) is Graph's "service temporarily
//! unavailable", and also what Account Kit answered for a wrong app id or
//! app secret. The client cannot tell which from the answer, so it retries
//! code 2 like any transient error, a bounded number of times, and reports
//! the last one when they are used up ([`Error::is_app_misconfigured`]).
//! [`GraphVerifier`](crate::verify::GraphVerifier) then tells an outage
//! from refused credentials with [`GraphClient::check_app_credentials`] and
//! [`GraphClient::check_service`].

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, Stream, TryStreamExt};
use reqwest::{Method, RequestBuilder};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::Config;
use crate::error::{ConfigError, Error, GraphErrorEnvelope};
use crate::observe::upstream::{self, Call, UpstreamTimings};
use crate::types::{Account, AccountsPage, Success, TokenExchange};

/// The largest answer body read; a Graph page of 1,000 accounts is ~150 KB.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How long an idle pooled connection is kept: under the 60–75 s keep-alive
/// common at HTTP front ends.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(55);
/// The smallest and largest page size of the accounts listing.
pub const LIMIT_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// An Account Kit Graph API client for one app. Cheap to clone (an `Arc`).
///
/// ```no_run
/// use actix_accountkit::{client::GraphClient, config::Config};
///
/// # async fn run() -> Result<(), actix_accountkit::Error> {
/// let client = GraphClient::new(Config::builder("1234", "app-secret").build()?)?;
/// let account = client.me("EMAW...").await?;
/// println!("{} logged in with {:?}", account.id, account.phone);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: Config,
    /// `{base}/{version}/`
    root: Url,
    me: Url,
    access_token: Url,
    logout: Url,
    accounts: Url,
    /// How long each request took, by call (feature `prometheus`).
    timings: UpstreamTimings,
}

impl GraphClient {
    /// Builds a client (and its connection pool) from a configuration.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_http_client_builder(config, reqwest::Client::builder())
    }

    /// Builds a client on a `reqwest::ClientBuilder` of your own (a proxy,
    /// TLS roots, pool settings). This crate sets on it the configured
    /// timeouts, its user agent, the idle-connection timeout, and turns
    /// redirects off: a redirect would carry the token and its proof
    /// wherever it points.
    ///
    /// ```
    /// use actix_accountkit::{client::GraphClient, Config};
    ///
    /// # fn main() -> Result<(), actix_accountkit::Error> {
    /// let config = Config::builder("1234", "app-secret").build()?;
    /// let http = reqwest::Client::builder().pool_max_idle_per_host(16);
    /// let client = GraphClient::with_http_client_builder(config, http)?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn with_http_client_builder(
        config: Config,
        http: reqwest::ClientBuilder,
    ) -> Result<Self, Error> {
        let http = http
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            // Drop idle connections before a server's keep-alive would:
            // a write (never retried) sent on a connection the server is
            // closing that instant fails for nothing.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("actix-accountkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.without_url().to_string()))?;
        Self::from_parts(config, http)
    }

    /// Builds a client on a `reqwest::Client` of your own. Its timeout
    /// should not exceed the configured one, and it must not follow
    /// redirects (reqwest's default follows up to 10): a redirect would
    /// carry the token and its proof wherever it points. An answer from
    /// another address than the one asked is refused
    /// ([`Error::Redirected`], never retried), but by then the request
    /// has gone.
    #[deprecated(
        since = "0.1.0",
        note = "use `with_http_client_builder`, which turns redirects off"
    )]
    pub fn with_http_client(config: Config, http: reqwest::Client) -> Result<Self, Error> {
        Self::from_parts(config, http)
    }

    fn from_parts(config: Config, http: reqwest::Client) -> Result<Self, Error> {
        let join = |base: &Url, path: &str| {
            base.join(path).map_err(|_| ConfigError::InvalidBaseUrl {
                reason: "cannot append the API path",
            })
        };
        let root = join(config.base_url(), &format!("{}/", config.api_version()))?;
        let me = join(&root, "me")?;
        let access_token = join(&root, "access_token")?;
        let logout = join(&root, "logout")?;
        let accounts = join(&root, &format!("{}/accounts/", config.app_id()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                root,
                me,
                access_token,
                logout,
                accounts,
                timings: UpstreamTimings::default(),
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// `GET /{v}/me`: validates a user access token and returns its account,
    /// with `appsecret_proof` attached when the config requires it.
    ///
    /// This method does not check `application.id`; the
    /// [`GraphVerifier`](crate::verify::GraphVerifier) does.
    pub async fn me(&self, access_token: &str) -> Result<Account, Error> {
        let proof = self.proof_for(access_token);
        let params = user_token_params(access_token, &proof);
        self.call(
            Method::GET,
            &self.inner.me,
            &params,
            &[access_token],
            Resend::Read,
        )
        .await
    }

    /// `GET /{v}/access_token?grant_type=authorization_code&code=…`: exchanges
    /// an authorization code for a user access token.
    ///
    /// Retried only after a failure that shows the exchange was not made
    /// (code 2, rate limiting, no connection): a code is single-use, and a
    /// retry after a timeout or a lost answer would meet "This
    /// authorization code has been used".
    pub async fn exchange_code(&self, code: &str) -> Result<TokenExchange, Error> {
        let app_token = self.inner.config.app_access_token().expose_secret();
        let params = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("access_token", app_token),
        ];
        self.call(
            Method::GET,
            &self.inner.access_token,
            &params,
            &[code],
            Resend::NotCarriedOut,
        )
        .await
    }

    /// `POST /{v}/logout`: invalidates one user access token. Retried only
    /// after a failure that shows it was not carried out (see
    /// [Retries](self#retries)).
    pub async fn logout(&self, access_token: &str) -> Result<(), Error> {
        let proof = self.proof_for(access_token);
        let params = user_token_params(access_token, &proof);
        let done: Success = self
            .call(
                Method::POST,
                &self.inner.logout,
                &params,
                &[access_token],
                Resend::NotCarriedOut,
            )
            .await?;
        success(done)
    }

    /// `POST /{v}/{account_id}/invalidate_all_tokens`: logs every session of
    /// an account out. Retried like [`logout`](Self::logout).
    pub async fn invalidate_all_tokens(&self, account_id: &str) -> Result<(), Error> {
        let url = self.account_url(account_id, "/invalidate_all_tokens")?;
        let done: Success = self.app_call(Method::POST, &url).await?;
        success(done)
    }

    /// `DELETE /{v}/{account_id}`: deletes an account. Retried like
    /// [`logout`](Self::logout).
    pub async fn delete_account(&self, account_id: &str) -> Result<(), Error> {
        let url = self.account_url(account_id, "")?;
        let done: Success = self.app_call(Method::DELETE, &url).await?;
        success(done)
    }

    /// Checks the app id and app secret with an app-token call (one account
    /// of the listing). A wrong id or secret comes back as code 2, and so
    /// does an outage: [`check_service`](Self::check_service) tells which.
    pub async fn check_app_credentials(&self) -> Result<(), Error> {
        upstream::credentials_check(self.accounts_page(1, None))
            .await
            .map(drop)
    }

    /// Checks that Account Kit is answering at all, without sending any
    /// credential: `GET /{v}/me` with a token that cannot be valid and no
    /// proof. A service that is up refuses it with a Graph error (code 190,
    /// as recorded: the token is checked before the proof), which is `Ok`;
    /// code 2, rate limiting, a 5xx, a timeout or no connection is the
    /// error. Retried as a read.
    ///
    /// ```no_run
    /// # async fn run(client: actix_accountkit::client::GraphClient) {
    /// if let Err(e) = client.check_app_credentials().await {
    ///     if e.is_app_misconfigured() && client.check_service().await.is_ok() {
    ///         eprintln!("Account Kit is up and refuses our app id or app secret");
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn check_service(&self) -> Result<(), Error> {
        let params = [("access_token", SERVICE_PROBE_TOKEN)];
        // Timed with the credential self-check it belongs to, not as `/me`.
        let answer = upstream::credentials_check(self.call::<serde::de::IgnoredAny>(
            Method::GET,
            &self.inner.me,
            &params,
            &[],
            Resend::Read,
        ))
        .await;
        match answer {
            Ok(_) => Ok(()),
            Err(e)
                if e.graph().is_some_and(|g| {
                    g.status < 500 && !g.is_app_misconfigured() && !g.is_rate_limited()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /{v}/{app_id}/accounts/?limit=N`: one page of the app's accounts,
    /// starting after `after` (a cursor from a previous page) if given.
    ///
    /// A limit outside 1..=1000 is refused before any request is made.
    pub async fn accounts_page(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<AccountsPage, Error> {
        check_limit(limit)?;
        let app_token = self.inner.config.app_access_token().expose_secret();
        let limit = limit.to_string();
        let mut params = vec![("access_token", app_token), ("limit", limit.as_str())];
        if let Some(after) = after {
            params.push(("after", after));
        }
        self.call(
            Method::GET,
            &self.inner.accounts,
            &params,
            &[],
            Resend::Read,
        )
        .await
    }

    /// Every page of the app's accounts, following `paging.next` until it is
    /// absent. Starts at the beginning, or after the cursor `after`.
    ///
    /// Each page is retried per the [`RetryPolicy`](crate::config::RetryPolicy);
    /// the stream ends after the first error it yields. A `next` URL on
    /// another origin than the configured base URL is refused (it would
    /// receive the app access token).
    pub fn account_pages(
        &self,
        limit: u32,
        after: Option<String>,
    ) -> impl Stream<Item = Result<AccountsPage, Error>> + Send + 'static {
        enum Step {
            First(Option<String>),
            Next(Url),
            Done,
        }
        let client = self.clone();
        stream::try_unfold(Step::First(after), move |step| {
            let client = client.clone();
            async move {
                let page = match step {
                    Step::Done => return Ok(None),
                    Step::First(after) => client.accounts_page(limit, after.as_deref()).await?,
                    Step::Next(url) => {
                        client
                            .call::<AccountsPage>(Method::GET, &url, &[], &[], Resend::Read)
                            .await?
                    }
                };
                let next = match page.paging.as_ref().and_then(|p| p.next.as_deref()) {
                    Some(next) => Step::Next(client.same_origin(next)?),
                    None => Step::Done,
                };
                Ok(Some((page, next)))
            }
        })
    }

    /// Every account of the app, one at a time, following `paging.next`.
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// # async fn run(client: actix_accountkit::client::GraphClient) -> Result<(), actix_accountkit::Error> {
    /// let mut accounts = std::pin::pin!(client.accounts(1000));
    /// while let Some(account) = accounts.try_next().await? {
    ///     println!("{}", account.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn accounts(
        &self,
        limit: u32,
    ) -> impl Stream<Item = Result<Account, Error>> + Send + 'static {
        self.account_pages(limit, None)
            .map_ok(|page| stream::iter(page.data.into_iter().map(Ok)))
            .try_flatten()
    }

    /// The `appsecret_proof` of a user token, when the config requires one.
    fn proof_for(&self, access_token: &str) -> Option<String> {
        let config = &self.inner.config;
        config
            .require_appsecret_proof()
            .then(|| config.appsecret_proof(access_token))
    }

    /// Which call a request to `url` is, for the duration histogram.
    fn call_of(&self, method: &Method, url: &Url) -> Call {
        let inner = &self.inner;
        if *url == inner.me {
            Call::Me
        } else if *url == inner.access_token {
            Call::AccessToken
        } else if *url == inner.logout {
            Call::Logout
        } else if *method == Method::DELETE {
            Call::Delete
        } else if url.path().ends_with("/invalidate_all_tokens") {
            Call::InvalidateAllTokens
        } else {
            Call::Accounts
        }
    }

    /// The durations of the requests sent, by call.
    #[cfg(feature = "prometheus")]
    pub(crate) fn timings(&self) -> &UpstreamTimings {
        &self.inner.timings
    }

    fn account_url(&self, account_id: &str, suffix: &str) -> Result<Url, Error> {
        if account_id.is_empty()
            || account_id.len() > 32
            || !account_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::InvalidAccountId);
        }
        self.inner
            .root
            .join(&format!("{account_id}{suffix}"))
            .map_err(|_| Error::InvalidAccountId)
    }

    fn same_origin(&self, next: &str) -> Result<Url, Error> {
        let url = Url::parse(next).map_err(|_| Error::Decode {
            status: 200,
            detail: "paging.next is not a URL".into(),
        })?;
        if url.origin() != self.inner.config.base_url().origin() {
            return Err(Error::Decode {
                status: 200,
                detail: "paging.next points to another origin than the base URL".into(),
            });
        }
        Ok(url)
    }

    async fn app_call<T: DeserializeOwned>(&self, method: Method, url: &Url) -> Result<T, Error> {
        let app_token = self.inner.config.app_access_token().expose_secret();
        self.call(
            method,
            url,
            &[("access_token", app_token)],
            &[],
            Resend::NotCarriedOut,
        )
        .await
    }

    /// Sends one call, sending failed attempts again per the retry policy
    /// and `resend` (see [Retries](self#retries)). `extra_secrets` are
    /// scrubbed from any Graph error text, beside the app secret and client
    /// token.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        params: &[(&str, &str)],
        extra_secrets: &[&str],
        resend: Resend,
    ) -> Result<T, Error> {
        let policy = self.inner.config.retry_policy();
        let mut retry = 0;
        loop {
            let request = self.inner.http.request(method.clone(), url.clone());
            let request = if method == Method::GET {
                request.query(params)
            } else {
                request.form(params)
            };
            // Every credential the request carries is scrubbed from the
            // answer: the token, its proof, a code, the app token.
            let secrets: Vec<&str> = params
                .iter()
                .filter(|(name, _)| SECRET_PARAMS.contains(name))
                .map(|(_, value)| *value)
                .chain(extra_secrets.iter().copied())
                .collect();
            let sent = self.send(request, &secrets);
            match self
                .inner
                .timings
                .time(|| self.call_of(&method, url), sent)
                .await
            {
                Err(e) if retry < policy.max_retries && resend.allows(&e) => {
                    retry += 1;
                    let wait = jitter(policy.backoff(retry));
                    tracing::debug!(retry, ?wait, error = %e, "retrying Account Kit call");
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        extra_secrets: &[&str],
    ) -> Result<T, Error> {
        let timeout = self.inner.config.timeout();
        let request = request.build().map_err(|e| Error::transport(e, timeout))?;
        let asked = request.url().clone();
        let mut response = self
            .inner
            .http
            .execute(request)
            .await
            .map_err(|e| Error::transport(e, timeout))?;
        let status = response.status().as_u16();
        if response.url() != &asked {
            // A client of the caller's own followed a redirect: whoever
            // answered is not the endpoint configured.
            return Err(Error::Redirected);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::transport(e, timeout))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Error::Decode {
                    status,
                    detail: format!("body larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let secrets = self
            .inner
            .config
            .secrets()
            .chain(extra_secrets.iter().copied());
        decode(status, &body, secrets)
    }
}

/// How an Account Kit answer (HTTP status and body) becomes `T` or the
/// matching [`Error`]: a 2xx body of the right shape is `T`; a Graph error
/// object is [`Error::Graph`]; anything else is [`Error::Decode`], which keeps
/// none of the body. Useful with a transport of your own, and fuzzed.
///
/// ```
/// use actix_accountkit::{client::decode_answer, types::Account};
///
/// let body = br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"CeRr0HW5x07"}}"#;
/// let error = decode_answer::<Account>(400, body).unwrap_err();
/// assert!(error.is_invalid_token());
/// ```
pub fn decode_answer<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, Error> {
    decode(status, body, [])
}

/// [`decode_answer`], scrubbing `secrets` from any Graph error text.
pub(crate) fn decode<'a, T: DeserializeOwned>(
    status: u16,
    body: &[u8],
    secrets: impl IntoIterator<Item = &'a str>,
) -> Result<T, Error> {
    if (200..300).contains(&status) {
        match serde_json::from_slice::<T>(body) {
            Ok(value) => return Ok(value),
            Err(e) => {
                if serde_json::from_slice::<GraphErrorEnvelope>(body).is_err() {
                    return Err(Error::decode(status, &e));
                }
            }
        }
    }
    match serde_json::from_slice::<GraphErrorEnvelope>(body) {
        Ok(envelope) => {
            let mut error = envelope.error;
            error.status = status;
            error.scrub(secrets);
            Err(error.into())
        }
        Err(e) if body.is_empty() || e.is_syntax() || e.is_eof() => Err(Error::Decode {
            status,
            detail: "an error status without a JSON body".into(),
        }),
        Err(e) => Err(Error::decode(status, &e)),
    }
}

/// Which failed attempts of a call are sent again; see [Retries](self#retries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resend {
    /// A read: every retryable failure.
    Read,
    /// A write or the code exchange: only a failure that shows the call was
    /// not carried out.
    NotCarriedOut,
}

impl Resend {
    fn allows(self, error: &Error) -> bool {
        match self {
            Resend::Read => error.is_retryable(),
            Resend::NotCarriedOut => error.shows_not_carried_out(),
        }
    }
}

/// The user token of [`GraphClient::check_service`]: shaped like a token,
/// valid for no one, and no secret.
const SERVICE_PROBE_TOKEN: &str = "EMAWaccountkitserviceprobe0000000000000000";

/// Request parameters that carry a credential.
const SECRET_PARAMS: [&str; 3] = ["access_token", "appsecret_proof", "code"];

/// `access_token`, and `appsecret_proof` when there is one.
fn user_token_params<'a>(
    access_token: &'a str,
    proof: &'a Option<String>,
) -> Vec<(&'static str, &'a str)> {
    let mut params = vec![("access_token", access_token)];
    if let Some(proof) = proof {
        params.push(("appsecret_proof", proof.as_str()));
    }
    params
}

fn check_limit(limit: u32) -> Result<(), Error> {
    if LIMIT_RANGE.contains(&limit) {
        Ok(())
    } else {
        Err(Error::InvalidLimit { limit })
    }
}

fn success(done: Success) -> Result<(), Error> {
    if done.success {
        Ok(())
    } else {
        Err(Error::Decode {
            status: 200,
            detail: "the service answered {\"success\": false}".into(),
        })
    }
}

/// Full jitter in [d/2, d]: retries of many clients do not line up.
fn jitter(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    half + half.mul_f64((random % 1024) as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_recorded_error_bodies() {
        let cases: [(u16, &str, i64); 4] = [
            (
                400,
                r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"CeRr0HW5x07"}}"#,
                190,
            ),
            (
                400,
                r#"{"error":{"message":"Invalid OAuth 2.0 Access Token","type":"EMApiException","code":190,"error_data":[],"fbtrace_id":"AOwHiqyQhS85c4TaEd4S-bE"}}"#,
                190,
            ),
            (
                400,
                r#"{"error":{"message":"Invalid verification code","type":"OAuthException","code":1,"fbtrace_id":"FNXWBWxiz3p"}}"#,
                1,
            ),
            (
                500,
                r#"{"error":{"message":"Service temporarily unavailable","type":"EMApiException","is_transient":true,"code":2,"fbtrace_id":"C4erpIHwfYY"}}"#,
                2,
            ),
        ];
        for (status, body, code) in cases {
            let err = decode::<Account>(status, body.as_bytes(), []).unwrap_err();
            let graph = err.graph().expect("a Graph error");
            assert_eq!((graph.status, graph.code), (status, code));
        }
        let code2 = decode::<Account>(500, cases_body_code2().as_bytes(), []).unwrap_err();
        assert!(code2.is_app_misconfigured());
        assert!(
            code2.is_retryable(),
            "code 2 is retried, a bounded number of times"
        );
        assert!(Resend::NotCarriedOut.allows(&code2), "even by a write");
        assert!(!code2.is_unavailable());
    }

    fn cases_body_code2() -> &'static str {
        r#"{"error":{"message":"Service temporarily unavailable","type":"EMApiException","is_transient":true,"code":2,"fbtrace_id":"C4erpIHwfYY"}}"#
    }

    #[test]
    fn unreadable_bodies_are_decode_errors_without_content() {
        let err = decode::<Account>(200, br#"{"id": 12, "x": "EMAWsecret"}"#, []).unwrap_err();
        assert!(matches!(err, Error::Decode { status: 200, .. }), "{err:?}");
        let err = decode::<Account>(200, br#"{"id": "EMAWsecret"#, []).unwrap_err();
        assert!(!err.to_string().contains("EMAWsecret"));
        let err = decode::<Account>(502, b"<html>bad gateway</html>", []).unwrap_err();
        assert!(matches!(err, Error::Decode { status: 502, .. }));
        assert!(err.is_retryable() && err.is_unavailable());
    }

    #[test]
    fn error_text_is_scrubbed() {
        let body = br#"{"error":{"message":"Malformed access token EMAWtopsecret","type":"OAuthException","code":190}}"#;
        let err = decode::<Account>(400, body, ["EMAWtopsecret"]).unwrap_err();
        assert!(err.is_invalid_token());
        assert!(!format!("{err} {err:?}").contains("EMAWtopsecret"));
    }

    #[test]
    fn encoded_echoes_are_scrubbed_too() {
        const TOKEN: &str = "EMAWtop+secret/token==";
        const PROOF: &str = "dcca0fde4790f53de526ea8d25c7f8ddbb2616f0d9cb03abc05ba4f144b2d665";
        let encoded: String = url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
        let twice: String = url::form_urlencoded::byte_serialize(encoded.as_bytes()).collect();
        for echo in [
            encoded.clone(),
            encoded.to_lowercase(),
            twice,
            PROOF.to_uppercase(),
            format!("proof%3D{PROOF}"),
        ] {
            let body = serde_json::json!({"error": {
                "message": format!("bad request ?access_token={echo}&x=1"),
                "error_user_msg": format!("echo {echo}"),
                "type": "OAuthException", "code": 190}});
            let body = serde_json::to_vec(&body).unwrap();
            let err = decode::<Account>(400, &body, [TOKEN, PROOF]).unwrap_err();
            let shown = format!("{err} {err:?}").to_lowercase();
            assert!(!shown.contains(&echo.to_lowercase()), "{echo}: {shown}");
            assert!(err.is_invalid_token());
        }
        // Unrelated text is left alone.
        let body = br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}"#;
        let err = decode::<Account>(400, body, [TOKEN, PROOF]).unwrap_err();
        assert!(err.to_string().contains("Invalid OAuth access token."));
    }

    #[test]
    fn limit_is_checked() {
        assert!(check_limit(0).is_err());
        assert!(check_limit(1001).is_err());
        assert!(check_limit(1).is_ok() && check_limit(1000).is_ok());
    }
}
