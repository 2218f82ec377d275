//! Verification: the pluggable [`Verifier`] trait, its typed [`Refusal`]s,
//! and the built-in [`GraphVerifier`] that asks Account Kit.
//!
//! # Telling a foreign token from a misconfigured server
//!
//! With "Require App Secret" on, `GET /me` with a proof made from our secret
//! is refused with code 100 in two different situations:
//!
//! * the token belongs to another app (its proof would need that app's
//!   secret): the caller's fault, a 401 for that request alone;
//! * our own app secret is wrong (rotated in the dashboard, or the Facebook
//!   secret was configured instead of the Account Kit one): the operator's
//!   fault, a 503 and an error log for every request.
//!
//! [`GraphVerifier`] tells them apart with a credential self-check: an
//! app-token call (one entry of the accounts listing) that succeeds only if
//! our app id and secret are right. Concurrent refusals share one check. A
//! "bad credentials" verdict is kept for
//! [`GraphVerifierBuilder::credential_check_ttl`]; a "good credentials"
//! verdict counts only for refusals that came before the check started, so
//! that after the app secret is rotated, valid users get a 503 (and the
//! operator an error) rather than a cached "wrong app" 401.
//! [`GraphVerifier::check_credentials`] runs it on demand, e.g. at start-up.
//!
//! # Telling an outage from a misconfigured server: code 2
//!
//! Graph error code 2 is Graph's "service temporarily unavailable", and also
//! what Account Kit answered for a wrong app id or app secret; both say
//! `is_transient: true`. The client has already retried it (a bounded
//! number of times) when `/me` reports it, and the verifier asks the same
//! self-check:
//!
//! * credentials confirmed: an outage, [`Refusal::Unavailable`] (503 with
//!   `Retry-After`, logged as a warning by the middleware);
//! * credentials refused: [`Refusal::Misconfigured`] (503, logged as an
//!   error), carrying [`Error::CredentialsRefused`], whose message names the
//!   app id whose app secret was refused, never the secret.
//!
//! The self-check's own answer can be code 2 for both reasons too, so when
//! it is, the verifier asks once more without any credential
//! ([`GraphClient::check_service`]: `/me` with a token that cannot be
//! valid). A service that answers that with a refusal is up, so it refused
//! our credentials; one that answers code 2 again (or not at all) is down:
//! an outage. That "service down" verdict is reused for the check TTL like a
//! "bad credentials" one (a 503 either way), so that an outage costs one
//! self-check per TTL rather than one per request. The answer a user gets is
//! the same 503 in every case; only the log, and so the operator's next
//! step, differs.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::client::GraphClient;
use crate::error::Error;
use crate::token::{check_token, Malformed};
use crate::types::Account;

/// How long a credential self-check verdict is trusted. Default is 30 s.
pub const DEFAULT_CREDENTIAL_CHECK_TTL: Duration = Duration::from_secs(30);

/// What verifying a token gives: the account, or why it was refused. The
/// one name for it across the verifier, the cache and the shared tier.
pub type Verification = Result<Arc<Account>, Refusal>;

/// Turns a user access token into a verified account, or a typed refusal.
///
/// Object-safe, so that the middleware, the cache and the extractors can hold
/// an `Arc<dyn Verifier>`; implement it to plug in another backend or a
/// test double.
///
/// ```
/// use actix_accountkit::verify::{Refusal, Verification, Verifier};
/// use actix_accountkit::types::Account;
/// use futures::future::{BoxFuture, FutureExt};
/// use std::sync::Arc;
///
/// /// Accepts exactly one token.
/// struct OneToken;
///
/// impl Verifier for OneToken {
///     fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
///         let result = if token == "let-me-in" {
///             Ok(Arc::new(Account::new("1000000000000001")))
///         } else {
///             Err(Refusal::InvalidToken { subcode: None })
///         };
///         async move { result }.boxed()
///     }
/// }
/// ```
pub trait Verifier: Send + Sync + 'static {
    /// Verifies one token (already syntax-checked by the middleware; a
    /// verifier that calls out should check again).
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification>;

    /// A synchronous answer if one is at hand without waiting (a cache hit),
    /// so the hot path neither boxes a future nor yields. Default: `None`.
    fn verify_now(&self, token: &str) -> Option<Verification> {
        let _ = token;
        None
    }

    /// The app whose tokens this verifier accepts, if it is bound to one
    /// (the built-in [`GraphVerifier`] is): a shared tier of another app is
    /// refused in front of it. Default: `None`.
    fn app_id(&self) -> Option<&str> {
        None
    }

    /// Verifies one token with an answer no older than `max_age`: a route
    /// that moves money should not trust a verification made minutes ago
    /// ([`AccountKitAuthBuilder::max_age`](crate::auth::AccountKitAuthBuilder::max_age)).
    ///
    /// The default calls [`verify`](Self::verify), which is right for a
    /// verifier that asks its backend every time (the built-in
    /// [`GraphVerifier`]). **A verifier that answers from a cache of its own
    /// must override this** (as [`CachedVerifier`](crate::cache::CachedVerifier)
    /// does), or routes with a max age will trust its old answers.
    fn verify_within<'a>(
        &'a self,
        token: &'a str,
        max_age: Duration,
    ) -> BoxFuture<'a, Verification> {
        let _ = max_age;
        self.verify(token)
    }

    /// Like [`verify_now`](Self::verify_now), with an answer no older than
    /// `max_age`. Default: `None` (no answer at hand is fresh enough).
    fn verify_now_within(&self, token: &str, max_age: Duration) -> Option<Verification> {
        let _ = (token, max_age);
        None
    }

    /// An answer remembered for exactly these bytes, asked **before** the
    /// token's syntax is checked: the middleware's hot path. With a
    /// `max_age`, only an account verified within it.
    ///
    /// The middleware trusts an account returned here without checking the
    /// token, so **return one only for bytes that [`verify`](Self::verify)
    /// or [`verify_within`](Self::verify_within) accepted as a checked
    /// token**. A refusal or `None` is followed by the syntax check (so a
    /// malformed token is still refused as malformed); after `None`, by
    /// [`verify`](Self::verify) (or its `_within` form).
    ///
    /// The default is right for every verifier: it checks the syntax, then
    /// answers as [`verify_now`](Self::verify_now) (or its `_within` form).
    /// A verifier whose memory holds only tokens that were checked may skip
    /// the check, which looks at every byte:
    /// [`CachedVerifier`](crate::cache::CachedVerifier) does, as it checks
    /// every token before its first verification.
    fn recall(&self, token: &[u8], max_age: Option<Duration>) -> Option<Verification> {
        let token = std::str::from_utf8(token).ok()?;
        check_token(token).ok()?;
        answer_now(self, token, max_age)
    }
}

/// `verifier`'s answer at hand for a checked token: [`Verifier::verify_now`],
/// or its `_within` form for a route with a max age.
pub(crate) fn answer_now<V: Verifier + ?Sized>(
    verifier: &V,
    token: &str,
    max_age: Option<Duration>,
) -> Option<Verification> {
    match max_age {
        None => verifier.verify_now(token),
        Some(max_age) => verifier.verify_now_within(token, max_age),
    }
}

impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
        (**self).verify(token)
    }

    fn verify_now(&self, token: &str) -> Option<Verification> {
        (**self).verify_now(token)
    }

    fn app_id(&self) -> Option<&str> {
        (**self).app_id()
    }

    fn verify_within<'a>(
        &'a self,
        token: &'a str,
        max_age: Duration,
    ) -> BoxFuture<'a, Verification> {
        (**self).verify_within(token, max_age)
    }

    fn verify_now_within(&self, token: &str, max_age: Duration) -> Option<Verification> {
        (**self).verify_now_within(token, max_age)
    }

    fn recall(&self, token: &[u8], max_age: Option<Duration>) -> Option<Verification> {
        (**self).recall(token, max_age)
    }
}

/// Why a request was not let in. Each kind drives a different HTTP answer.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No token was sent: 401 with a bare `Bearer` challenge.
    #[error("no access token was sent")]
    MissingToken,
    /// Something was sent that cannot be a token; refused locally: 401.
    #[error("malformed access token: {0}")]
    Malformed(#[from] Malformed),
    /// Account Kit refused the token (code 190: invalid, expired, logged
    /// out): 401. Cached negatively.
    #[error("the access token is invalid, expired or logged out")]
    InvalidToken {
        /// The Graph error subcode, when one was given.
        subcode: Option<i64>,
    },
    /// The token is valid, but for another app (or the app could not be
    /// checked and the policy refuses that): 401. Cached negatively.
    #[error("the access token was not issued for this app")]
    WrongApp,
    /// Account Kit could not be asked: timeout, transport failure, 5xx,
    /// code 2 while our credentials pass the self-check (an outage), rate
    /// limiting, unreadable answer: 503 with `Retry-After`. Never cached.
    #[error("Account Kit is unavailable: {0}")]
    Unavailable(Arc<Error>),
    /// Our own configuration is wrong (code 2 or the proof refused while
    /// our credentials fail the self-check, then carrying
    /// [`Error::CredentialsRefused`]; or a proof required that we were
    /// configured not to send): 503, logged as an error for the operator,
    /// never blamed on the user. Never cached.
    #[error("the server's Account Kit configuration is wrong: {0}")]
    Misconfigured(Arc<Error>),
    /// Too many upstream verifications are under way already
    /// ([`CacheConfigBuilder::max_in_flight`](crate::cache::CacheConfigBuilder::max_in_flight)):
    /// 503 with `Retry-After`. Never cached.
    #[error("too many access tokens are being verified at once")]
    Overloaded,
}

impl Refusal {
    /// Whether the refusal is definite, and so may be cached negatively.
    pub fn is_definite(&self) -> bool {
        matches!(self, Refusal::InvalidToken { .. } | Refusal::WrongApp)
    }

    /// Whether the refusal is the caller's (401) rather than the server's
    /// (503).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Refusal::MissingToken
                | Refusal::Malformed(_)
                | Refusal::InvalidToken { .. }
                | Refusal::WrongApp
        )
    }
}

/// What to do when `/me` has no `application` object (API versions before
/// v1.2), so that the app check cannot be made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingApplication {
    /// Refuse the token as [`Refusal::WrongApp`] (the default).
    #[default]
    Refuse,
    /// Accept it. Only for old API versions, where Account Kit did not say;
    /// with "Require App Secret" on, the proof still binds the token to our
    /// app.
    Accept,
}

/// The built-in verifier: `GET /me` with `appsecret_proof`, then the
/// `application.id` check.
///
/// ```no_run
/// use actix_accountkit::{client::GraphClient, config::Config, verify::GraphVerifier};
///
/// # async fn run() -> Result<(), actix_accountkit::Error> {
/// let client = GraphClient::new(Config::builder("1234", "app-secret").build()?)?;
/// let verifier = GraphVerifier::new(client);
/// verifier.check_credentials().await?; // fail fast on a wrong secret
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GraphVerifier {
    inner: Arc<GraphVerifierInner>,
}

struct GraphVerifierInner {
    client: GraphClient,
    missing_application: MissingApplication,
    check_ttl: Duration,
    /// The last self-check verdict. An async mutex: concurrent refusals wait
    /// for one check instead of each making their own.
    last_check: tokio::sync::Mutex<Option<Check>>,
}

/// A self-check: when it was started, when it answered, and its verdict.
#[derive(Clone, Debug)]
struct Check {
    started: Instant,
    answered: Instant,
    verdict: Verdict,
}

/// What a credential self-check found.
#[derive(Clone, Debug)]
enum Verdict {
    /// Our app token was accepted.
    Good,
    /// Our app token was refused while the service is up:
    /// [`Error::CredentialsRefused`].
    Bad(Arc<Error>),
    /// The check could not tell: Account Kit is down (the error says how).
    Down(Arc<Error>),
}

impl Verdict {
    /// The verdict of a [`GraphVerifier::self_check`] result.
    fn of(result: Result<(), Error>) -> Self {
        match result {
            Ok(()) => Verdict::Good,
            Err(e @ Error::CredentialsRefused { .. }) => Verdict::Bad(Arc::new(e)),
            Err(e) => Verdict::Down(Arc::new(e)),
        }
    }
}

impl fmt::Debug for GraphVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphVerifier")
            .field("app_id", &self.inner.client.config().app_id())
            .field("missing_application", &self.inner.missing_application)
            .finish_non_exhaustive()
    }
}

/// Builder of [`GraphVerifier`].
#[derive(Debug)]
pub struct GraphVerifierBuilder {
    client: GraphClient,
    missing_application: MissingApplication,
    check_ttl: Duration,
}

impl GraphVerifierBuilder {
    /// What to do when `/me` has no `application` object. Default is
    /// [`MissingApplication::Refuse`].
    pub fn missing_application(mut self, policy: MissingApplication) -> Self {
        self.missing_application = policy;
        self
    }

    /// How long a "bad credentials" or "service down" self-check verdict is
    /// reused (a "good" one only vouches for refusals received before it
    /// started). Default is [`DEFAULT_CREDENTIAL_CHECK_TTL`].
    pub fn credential_check_ttl(mut self, ttl: Duration) -> Self {
        self.check_ttl = ttl;
        self
    }

    /// Builds the verifier.
    pub fn build(self) -> GraphVerifier {
        GraphVerifier {
            inner: Arc::new(GraphVerifierInner {
                client: self.client,
                missing_application: self.missing_application,
                check_ttl: self.check_ttl,
                last_check: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

impl GraphVerifier {
    /// A verifier with the default policies.
    pub fn new(client: GraphClient) -> Self {
        Self::builder(client).build()
    }

    /// A builder, to change the policies.
    pub fn builder(client: GraphClient) -> GraphVerifierBuilder {
        GraphVerifierBuilder {
            client,
            missing_application: MissingApplication::default(),
            check_ttl: DEFAULT_CREDENTIAL_CHECK_TTL,
        }
    }

    /// The Graph client.
    pub fn client(&self) -> &GraphClient {
        &self.inner.client
    }

    /// Checks the app id and secret now (an app-token call, and when it
    /// answers code 2 a credential-free call that tells an outage from a
    /// refusal), and remembers the verdict. Call it at start-up to fail fast
    /// on a wrong secret: [`Error::CredentialsRefused`] (which names the app
    /// id, not the secret) when Account Kit refused them, the error of the
    /// call when it could not be asked.
    pub async fn check_credentials(&self) -> Result<(), Error> {
        let mut last = self.inner.last_check.lock().await;
        let started = Instant::now();
        let result = self.self_check().await;
        let verdict = match &result {
            Ok(()) => Verdict::Good,
            Err(Error::CredentialsRefused { app_id, source }) => {
                Verdict::Bad(Arc::new(Error::CredentialsRefused {
                    app_id: app_id.clone(),
                    source: Arc::clone(source),
                }))
            }
            // Not remembered: the caller gets the error itself, and the
            // next refusal asks again.
            Err(_) => return result,
        };
        *last = Some(Check {
            started,
            answered: Instant::now(),
            verdict,
        });
        result
    }

    /// The self-check: `Ok` when our app token is accepted,
    /// [`Error::CredentialsRefused`] when it is refused while the service
    /// is up, the error of the call otherwise (an outage).
    async fn self_check(&self) -> Result<(), Error> {
        let client = &self.inner.client;
        let refused = |source: Error| Error::CredentialsRefused {
            app_id: client.config().app_id().to_owned(),
            source: Arc::new(source),
        };
        match client.check_app_credentials().await {
            Ok(()) => Ok(()),
            Err(e) if e.is_invalid_token() => Err(refused(e)),
            // Code 2 is an outage or our credentials refused: refused only
            // if the service answers a call that carries no credential.
            Err(e) if e.is_app_misconfigured() => match client.check_service().await {
                Ok(()) => Err(refused(e)),
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The self-check verdict for a refusal (a refused proof, or code 2)
    /// received at `refused_at`.
    ///
    /// "Our credentials are bad" and "the service is down" are reused while
    /// fresh (a 503 either way). "Our credentials are good" may turn the
    /// refusal into a definite [`Refusal::WrongApp`] (cached, shared), so it
    /// is reused only from a check started after the refusal: an older one
    /// may predate a rotation of the app secret, and would lock valid users
    /// out. Concurrent refusals share one check.
    async fn credentials_verdict(&self, refused_at: Instant) -> Verdict {
        let mut last = self.inner.last_check.lock().await;
        if let Some(check) = &*last {
            let usable = match check.verdict {
                Verdict::Bad(_) | Verdict::Down(_) => {
                    check.answered.elapsed() < self.inner.check_ttl
                }
                Verdict::Good => check.started >= refused_at,
            };
            if usable {
                return check.verdict.clone();
            }
        }
        // Held across the call on purpose (an async mutex): the other
        // refusals wait for this one check.
        let started = Instant::now();
        let verdict = Verdict::of(self.self_check().await);
        *last = Some(Check {
            started,
            answered: Instant::now(),
            verdict: verdict.clone(),
        });
        verdict
    }

    async fn verify_token(&self, token: &str) -> Result<Arc<Account>, Refusal> {
        check_token(token)?;
        let client = &self.inner.client;
        let config = client.config();
        let answer = client.me(token).await;
        let answered_at = Instant::now();
        match answer {
            Ok(account) => match account.application_id() {
                Some(app) if app == config.app_id() => Ok(Arc::new(account)),
                Some(_) => Err(Refusal::WrongApp),
                None => match self.inner.missing_application {
                    MissingApplication::Accept => Ok(Arc::new(account)),
                    MissingApplication::Refuse => Err(Refusal::WrongApp),
                },
            },
            Err(e) if e.is_invalid_token() => Err(Refusal::InvalidToken {
                subcode: e.graph().and_then(|g| g.error_subcode),
            }),
            // Code 2, still there after the client's retries: an outage, or
            // our credentials refused.
            Err(e) if e.is_app_misconfigured() => {
                match self.credentials_verdict(answered_at).await {
                    Verdict::Good | Verdict::Down(_) => Err(Refusal::Unavailable(Arc::new(e))),
                    Verdict::Bad(refused) => Err(Refusal::Misconfigured(refused)),
                }
            }
            Err(e) if e.is_invalid_parameter() => {
                if !config.require_appsecret_proof() {
                    // Account Kit wants a proof we were configured not to send.
                    return Err(Refusal::Misconfigured(Arc::new(e)));
                }
                match self.credentials_verdict(answered_at).await {
                    // Our secret is right, so the proof only fails because
                    // the token is another app's.
                    Verdict::Good => Err(Refusal::WrongApp),
                    Verdict::Bad(refused) => Err(Refusal::Misconfigured(refused)),
                    Verdict::Down(check) => Err(Refusal::Unavailable(check)),
                }
            }
            Err(e) => Err(Refusal::Unavailable(Arc::new(e))),
        }
    }
}

impl Verifier for GraphVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
        self.verify_token(token).boxed()
    }

    fn app_id(&self) -> Option<&str> {
        Some(self.inner.client.config().app_id())
    }
}
