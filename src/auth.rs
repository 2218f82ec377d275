//! The authentication core shared by the middleware and the extractors:
//! [`AccountKitAuth`] (the verifier and how to answer refusals), the step
//! that authenticates one request, and what it yields, [`VerifiedAccount`]
//! and [`MaybeAccount`].
//!
//! [`middleware`](crate::middleware) wraps it around services;
//! [`extract`](crate::extract) runs it from handler signatures. Neither knows
//! the other: both only call [`AccountKitAuth`].
//!
//! # Answers
//!
//! Refusals follow RFC 6750 §3:
//!
//! | refusal | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no token | 401 | `Bearer realm="…"` (no error code, §3.1) |
//! | more than one token (two headers, two sources, a repeated parameter) | 400 | `Bearer realm="…", error="invalid_request", error_description="…"` |
//! | malformed, refused by Account Kit, other app | 401 | `Bearer realm="…", error="invalid_token", error_description="…"` |
//! | Account Kit unavailable, server misconfigured | 503 | none; `Retry-After` instead |
//!
//! with a JSON body `{"error": …, "error_description": …}` and
//! `Cache-Control: no-store`. [`AccountKitAuthBuilder::error_handler`]
//! reshapes them.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ConfigError;
use crate::observe::{self, RefusalCounts};
use crate::token::{find_token, Malformed, Presented, RequestToken, TokenSource};
use crate::types::{Account, Phone};
use crate::verify::{answer_now, Refusal, Verifier};

/// The realm of the `WWW-Authenticate` challenge. Default is `accountkit`.
pub const DEFAULT_REALM: &str = "accountkit";
/// `Retry-After` of a 503, in seconds. Default is 5.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

type ErrorHandler = Arc<dyn Fn(&HttpRequest, &Refusal, HttpResponse) -> HttpResponse + Send + Sync>;

/// Protects an `App`, a scope or a single resource: every request must carry
/// a token the verifier accepts.
///
/// The same value, registered as app data, also lets the [`VerifiedAccount`]
/// and [`MaybeAccount`] extractors verify requests on routes the middleware
/// does not wrap. Cheap to clone. A verification counts only for the
/// verifier that made it: an inner scope or a route with another verifier
/// (another app, a stricter policy) verifies the request again.
///
/// ```
/// use actix_accountkit::{AccountKitAuth, VerifiedAccount};
/// use actix_accountkit::token::TokenSource;
/// use actix_web::{web, App, HttpResponse};
/// # use actix_accountkit::{types::Account, verify::{Refusal, Verification, Verifier}};
/// # use futures::future::{BoxFuture, FutureExt};
/// # use std::sync::Arc;
/// # struct AnyVerifier;
/// # impl Verifier for AnyVerifier {
/// #     fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Verification> {
/// #         async { Err(Refusal::InvalidToken { subcode: None }) }.boxed()
/// #     }
/// # }
///
/// # fn main() -> Result<(), actix_accountkit::Error> {
/// let auth = AccountKitAuth::builder(AnyVerifier)
///     .realm("example")
///     .token_sources([TokenSource::BearerHeader, TokenSource::cookie("ak_token")])
///     .build()?;
///
/// let app = App::new()
///     .app_data(auth.clone())
///     .service(
///         web::scope("/api")
///             .wrap(auth)
///             .route("/me", web::get().to(|account: VerifiedAccount| async move {
///                 HttpResponse::Ok().body(account.id().to_owned())
///             })),
///     );
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccountKitAuth {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    verifier: Arc<dyn Verifier>,
    /// Which verifier made a [`VerifiedAccount`]: a verification counts only
    /// for the verifier that made it.
    verifier_id: VerifierId,
    sources: Box<[TokenSource]>,
    realm: Box<str>,
    retry_after: Duration,
    /// How old a cached verification may be on these routes; `None`: as
    /// old as the cache keeps it.
    max_age: Option<Duration>,
    answers: Answers,
    error_handler: Option<ErrorHandler>,
    /// Shared with the values made by [`AccountKitAuth::to_builder`].
    refusals: Arc<RefusalCounts>,
}

/// Builder of [`AccountKitAuth`].
pub struct AccountKitAuthBuilder {
    verifier: Arc<dyn Verifier>,
    sources: Vec<TokenSource>,
    realm: String,
    retry_after: Duration,
    max_age: Option<Duration>,
    error_handler: Option<ErrorHandler>,
    refusals: Arc<RefusalCounts>,
}

impl fmt::Debug for AccountKitAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKitAuthBuilder")
            .field("sources", &self.sources)
            .field("realm", &self.realm)
            .field("retry_after", &self.retry_after)
            .field("max_age", &self.max_age)
            .field("error_handler", &self.error_handler.is_some())
            .finish_non_exhaustive()
    }
}

impl AccountKitAuthBuilder {
    /// Where to look for the token. Exactly one source may find one: a token
    /// sent by two of them is refused with 400 `invalid_request` (RFC 6750
    /// §3.1). At least one source. Default is `[TokenSource::BearerHeader]`.
    pub fn token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// The realm named in the challenge: printable ASCII. Default is
    /// [`DEFAULT_REALM`].
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// `Retry-After` of a 503 (whole seconds, at least 1). Default is
    /// [`DEFAULT_RETRY_AFTER`].
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// How old a verification may be on these routes, like Firebase's
    /// `verifyIdToken(token, checkRevoked)`: a cached verification older
    /// than `max_age` is verified again upstream (one call for concurrent
    /// requests) before the handler runs, so a token logged out at Account
    /// Kit by another service is refused here within `max_age`, not within
    /// the cache TTL. Costs one Account Kit call per token per `max_age`
    /// on these routes; `Duration::ZERO` asks Account Kit on every request.
    /// Default: none (what the cache holds is trusted for its TTL).
    ///
    /// The verifier must honour it: [`CachedVerifier`](crate::cache::CachedVerifier)
    /// does (see [`Verifier::verify_within`]). Requests that the middleware of
    /// a looser scope already verified are checked again here.
    ///
    /// ```
    /// # use actix_accountkit::{AccountKitAuth, VerifiedAccount};
    /// # use actix_web::{web, App, HttpResponse};
    /// # use std::time::Duration;
    /// # fn f(auth: AccountKitAuth) -> Result<(), actix_accountkit::Error> {
    /// let fresh = auth.to_builder().max_age(Duration::from_secs(1)).build()?;
    /// let app = App::new().service(
    ///     web::scope("/payments")
    ///         .wrap(fresh)
    ///         .route("", web::post().to(|account: VerifiedAccount| async move {
    ///             HttpResponse::Ok().body(account.id().to_owned())
    ///         })),
    /// );
    /// # let _ = app; Ok(()) }
    /// ```
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Reshapes every refusal's response: the function receives the request,
    /// the refusal and the default response, and returns the response to
    /// send. Default is none (the RFC 6750 responses of [the module](self)).
    ///
    /// ```
    /// # use actix_accountkit::auth::AccountKitAuthBuilder;
    /// # fn f(auth: AccountKitAuthBuilder) -> AccountKitAuthBuilder {
    /// auth.error_handler(|_req, refusal, mut default| {
    ///     if refusal.is_client_error() {
    ///         default.headers_mut().insert(
    ///             actix_web::http::header::HeaderName::from_static("x-login-url"),
    ///             actix_web::http::header::HeaderValue::from_static("/login"),
    ///         );
    ///     }
    ///     default
    /// })
    /// # }
    /// ```
    pub fn error_handler(
        mut self,
        f: impl Fn(&HttpRequest, &Refusal, HttpResponse) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.error_handler = Some(Arc::new(f));
        self
    }

    /// Builds the value, with its challenges and headers made once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRealm`] for a realm outside printable ASCII,
    /// [`ConfigError::NoTokenSource`] for an empty list of sources.
    pub fn build(self) -> Result<AccountKitAuth, ConfigError> {
        if !self
            .realm
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(ConfigError::InvalidRealm);
        }
        if self.sources.is_empty() {
            return Err(ConfigError::NoTokenSource);
        }
        Ok(AccountKitAuth {
            inner: Arc::new(AuthInner {
                verifier_id: VerifierId::of(&self.verifier),
                answers: Answers::new(&self.realm, self.retry_after),
                verifier: self.verifier,
                sources: self.sources.into(),
                realm: self.realm.into(),
                retry_after: self.retry_after,
                max_age: self.max_age,
                error_handler: self.error_handler,
                refusals: self.refusals,
            }),
        })
    }
}

impl AccountKitAuth {
    /// Protects routes with `verifier` (usually a
    /// [`CachedVerifier`](crate::cache::CachedVerifier)), with the default
    /// settings.
    pub fn new(verifier: impl Verifier) -> Self {
        Self::from_arc(Arc::new(verifier))
    }

    /// Like [`new`](Self::new), with a shared verifier: every value made from
    /// the same `Arc` counts as the same verifier.
    pub fn from_arc(verifier: Arc<dyn Verifier>) -> Self {
        let answers = Answers::new(DEFAULT_REALM, DEFAULT_RETRY_AFTER);
        Self {
            inner: Arc::new(AuthInner {
                verifier_id: VerifierId::of(&verifier),
                verifier,
                sources: Box::new([TokenSource::BearerHeader]),
                realm: DEFAULT_REALM.into(),
                retry_after: DEFAULT_RETRY_AFTER,
                max_age: None,
                answers,
                error_handler: None,
                refusals: Arc::default(),
            }),
        }
    }

    /// A builder, to change the sources, the realm or the answers.
    pub fn builder(verifier: impl Verifier) -> AccountKitAuthBuilder {
        Self::builder_arc(Arc::new(verifier))
    }

    /// Like [`builder`](Self::builder), with a shared verifier: every value
    /// made from the same `Arc` counts as the same verifier.
    pub fn builder_arc(verifier: Arc<dyn Verifier>) -> AccountKitAuthBuilder {
        AccountKitAuthBuilder {
            verifier,
            sources: vec![TokenSource::BearerHeader],
            realm: DEFAULT_REALM.to_owned(),
            retry_after: DEFAULT_RETRY_AFTER,
            max_age: None,
            error_handler: None,
            refusals: Arc::default(),
        }
    }

    /// A builder that starts from this value's settings and verifier (a
    /// variant for one scope counts as the same verifier).
    pub fn to_builder(&self) -> AccountKitAuthBuilder {
        let inner = &self.inner;
        AccountKitAuthBuilder {
            verifier: inner.verifier.clone(),
            sources: inner.sources.to_vec(),
            realm: inner.realm.to_string(),
            retry_after: inner.retry_after,
            max_age: inner.max_age,
            error_handler: inner.error_handler.clone(),
            refusals: inner.refusals.clone(),
        }
    }

    /// The same protection with a max age
    /// ([`AccountKitAuthBuilder::max_age`]): a variant for the routes that
    /// need fresh verifications, counted as the same verifier. Register it
    /// as app data of those routes for the extractors to honour it too.
    ///
    /// ```
    /// # use actix_accountkit::{AccountKitAuth, VerifiedAccount};
    /// # use actix_web::{web, App, HttpResponse};
    /// # use std::time::Duration;
    /// # fn f(auth: AccountKitAuth) {
    /// let fresh = auth.max_age(Duration::from_secs(1));
    /// let app = App::new()
    ///     .app_data(auth.clone())
    ///     .service(
    ///         web::resource("/transfer")
    ///             .app_data(fresh) // the extractor verifies within 1 s here
    ///             .route(web::post().to(|account: VerifiedAccount| async move {
    ///                 HttpResponse::Ok().body(account.id().to_owned())
    ///             })),
    ///     );
    /// # let _ = app; }
    /// ```
    pub fn max_age(&self, max_age: Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(AuthInner {
                verifier: inner.verifier.clone(),
                verifier_id: inner.verifier_id,
                sources: inner.sources.clone(),
                realm: inner.realm.clone(),
                retry_after: inner.retry_after,
                max_age: Some(max_age),
                answers: inner.answers.clone(),
                error_handler: inner.error_handler.clone(),
                refusals: inner.refusals.clone(),
            }),
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &Arc<dyn Verifier> {
        &self.inner.verifier
    }

    /// The refusals answered so far, by reason (shared with the values made
    /// by [`to_builder`](Self::to_builder)).
    #[cfg(feature = "prometheus")]
    pub(crate) fn refusals(&self) -> &RefusalCounts {
        &self.inner.refusals
    }

    /// Whether `verified` (found in this request's extensions) may be
    /// trusted without verifying again: made by this value's verifier, within
    /// this value's max age if it has one.
    pub(crate) fn made(&self, verified: &VerifiedAccount) -> bool {
        verified.verified_by == self.inner.verifier_id
            && match self.inner.max_age {
                None => true,
                Some(max_age) => verified.within.is_some_and(|within| within <= max_age),
            }
    }

    /// Whether `other` is this value (a clone of it): only then may either
    /// serve a route registered with both. Two built apart may differ in
    /// more than their verifier: where they read the token (a cookie, or
    /// the header only), their realm, their error handler.
    pub(crate) fn is(&self, other: &AccountKitAuth) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// What a verification yields; the account id goes to the request's
    /// span as `enduser.id`.
    fn verified(&self, account: Arc<Account>, token: RequestToken) -> VerifiedAccount {
        observe::enduser(&account.id);
        VerifiedAccount {
            account,
            token,
            verified_by: self.inner.verifier_id,
            within: self.inner.max_age,
        }
    }

    /// Authenticates a request as far as it can without waiting (shared by
    /// the middleware and the extractors, so they cannot drift apart).
    pub(crate) fn start(&self, req: &HttpRequest) -> Step {
        match find_token(req, &self.inner.sources) {
            Presented::Absent => Step::Anonymous,
            Presented::Malformed(m) => Step::Decided(Err(Refusal::Malformed(m))),
            Presented::Located(located) => match located.unchecked_bytes() {
                // The hot path: an account remembered for these bytes needs
                // no syntax check (see `Verifier::recall`).
                Some(bytes) => match self.inner.verifier.recall(bytes, self.inner.max_age) {
                    Some(Ok(account)) => {
                        Step::Decided(Ok(self.verified(account, located.remembered())))
                    }
                    refused_or_unknown => match (located.check(), refused_or_unknown) {
                        (Err(m), _) => Step::Decided(Err(Refusal::Malformed(m))),
                        (Ok(token), Some(refused)) => {
                            Step::Decided(refused.map(|a| self.verified(a, token)))
                        }
                        // `recall` had the verifier's answer at hand, if any.
                        (Ok(token), None) => Step::Pending(token),
                    },
                },
                // Longer than any token seen: checked first.
                None => match located.check() {
                    Ok(token) => self.checked(token),
                    Err(m) => Step::Decided(Err(Refusal::Malformed(m))),
                },
            },
            Presented::Token(token) => self.checked(token),
        }
    }

    /// A well-formed token: the verifier's answer at hand, or a pending step.
    fn checked(&self, token: RequestToken) -> Step {
        match answer_now(
            &*self.inner.verifier,
            token.expose_secret(),
            self.inner.max_age,
        ) {
            Some(outcome) => Step::Decided(outcome.map(|a| self.verified(a, token))),
            None => Step::Pending(token),
        }
    }

    /// Finishes a [`Step::Pending`]: asks the verifier.
    pub(crate) async fn finish(&self, token: RequestToken) -> Result<VerifiedAccount, Refusal> {
        let verifier = &self.inner.verifier;
        let outcome = match self.inner.max_age {
            None => verifier.verify(token.expose_secret()).await,
            Some(max_age) => verifier.verify_within(token.expose_secret(), max_age).await,
        };
        outcome.map(|account| self.verified(account, token))
    }

    /// The response to a refusal: logged for the operator where it is the
    /// server's problem, then shaped by the error handler if one is set.
    pub fn error_response(&self, req: &HttpRequest, refusal: &Refusal) -> HttpResponse {
        self.inner.refusals.count(refusal);
        log_refusal(req, refusal);
        let default = self.inner.answers.response(refusal);
        match &self.inner.error_handler {
            Some(handler) => handler(req, refusal, default),
            None => default,
        }
    }
}

/// The answers to refusals, with their header values made once.
#[derive(Clone)]
struct Answers {
    /// The bare challenge (no token).
    challenge: HeaderValue,
    /// `error="invalid_request"`: more than one token (400).
    ambiguous: HeaderValue,
    malformed: HeaderValue,
    refused: HeaderValue,
    wrong_app: HeaderValue,
    retry_after: HeaderValue,
}

impl Answers {
    fn new(realm: &str, retry_after: Duration) -> Self {
        let quoted = quote(realm);
        let with_error = |error: &str, description: &str| {
            header_value(&format!(
                "Bearer realm=\"{quoted}\", error=\"{error}\", error_description=\"{description}\""
            ))
        };
        Self {
            challenge: header_value(&format!("Bearer realm=\"{quoted}\"")),
            ambiguous: with_error("invalid_request", DESC_AMBIGUOUS),
            malformed: with_error("invalid_token", DESC_MALFORMED),
            refused: with_error("invalid_token", DESC_REFUSED),
            wrong_app: with_error("invalid_token", DESC_WRONG_APP),
            retry_after: header_value(&retry_after.as_secs().max(1).to_string()),
        }
    }

    /// The answers with the default realm and `Retry-After`.
    fn default_ref() -> &'static Self {
        static DEFAULT: OnceLock<Answers> = OnceLock::new();
        DEFAULT.get_or_init(|| Answers::new(DEFAULT_REALM, DEFAULT_RETRY_AFTER))
    }

    fn response(&self, refusal: &Refusal) -> HttpResponse {
        let (status, challenge, error, description) = match refusal {
            Refusal::MissingToken => (
                StatusCode::UNAUTHORIZED,
                Some(&self.challenge),
                "unauthorized",
                "no access token was sent",
            ),
            Refusal::Malformed(Malformed::Ambiguous) => (
                StatusCode::BAD_REQUEST,
                Some(&self.ambiguous),
                "invalid_request",
                DESC_AMBIGUOUS,
            ),
            Refusal::Malformed(_) => (
                StatusCode::UNAUTHORIZED,
                Some(&self.malformed),
                "invalid_token",
                DESC_MALFORMED,
            ),
            Refusal::InvalidToken { .. } => (
                StatusCode::UNAUTHORIZED,
                Some(&self.refused),
                "invalid_token",
                DESC_REFUSED,
            ),
            Refusal::WrongApp => (
                StatusCode::UNAUTHORIZED,
                Some(&self.wrong_app),
                "invalid_token",
                DESC_WRONG_APP,
            ),
            Refusal::Unavailable(_) | Refusal::Misconfigured(_) | Refusal::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "temporarily_unavailable",
                "the access token cannot be verified right now; retry later",
            ),
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match challenge {
            Some(challenge) => {
                response.insert_header((header::WWW_AUTHENTICATE, challenge.clone()))
            }
            None => response.insert_header((header::RETRY_AFTER, self.retry_after.clone())),
        };
        response.json(ErrorBody {
            error,
            error_description: description,
        })
    }
}

/// A handler may return a [`Refusal`] with `?`: it is answered as the
/// middleware would, with the default realm and `Retry-After`.
impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Refusal::Malformed(Malformed::Ambiguous) => StatusCode::BAD_REQUEST,
            refusal if refusal.is_client_error() => StatusCode::UNAUTHORIZED,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        Answers::default_ref().response(self)
    }
}

/// How far [`AccountKitAuth::start`] got.
pub(crate) enum Step {
    /// No token was sent.
    Anonymous,
    /// Decided at once: a cache hit, a cached refusal, or a token refused
    /// locally.
    Decided(Result<VerifiedAccount, Refusal>),
    /// A cache miss: [`AccountKitAuth::finish`] asks the verifier.
    Pending(RequestToken),
}

const DESC_AMBIGUOUS: &str = "more than one access token was sent";
const DESC_MALFORMED: &str = "the access token is malformed";
const DESC_REFUSED: &str = "the access token is invalid, expired or logged out";
const DESC_WRONG_APP: &str = "the access token was not issued for this app";

#[derive(serde::Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: &'static str,
}

impl fmt::Debug for AccountKitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKitAuth")
            .field("sources", &self.inner.sources)
            .field("realm", &self.inner.realm)
            .field("retry_after", &self.inner.retry_after)
            .field("max_age", &self.inner.max_age)
            .field("error_handler", &self.inner.error_handler.is_some())
            .finish_non_exhaustive()
    }
}

fn log_refusal(req: &HttpRequest, refusal: &Refusal) {
    let path = req.path();
    match refusal {
        Refusal::Misconfigured(error) => tracing::error!(
            %path, %error,
            "Account Kit refused this server's credentials: check the app id, the Account Kit \
             app secret (not the Facebook app secret) and the appsecret_proof setting"
        ),
        Refusal::Unavailable(error) => {
            tracing::warn!(%path, %error, "Account Kit unavailable; answered 503")
        }
        Refusal::Overloaded => tracing::warn!(
            %path,
            "too many Account Kit verifications in flight (CacheConfigBuilder::max_in_flight); answered 503"
        ),
        refusal => tracing::debug!(%path, %refusal, "request refused"),
    }
}

/// Escapes a realm for a quoted-string (RFC 9110 §5.6.4).
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_ascii() => vec![c],
            _ => vec!['?'],
        })
        .collect()
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// A caller whose Account Kit token was verified.
///
/// ```
/// use actix_accountkit::VerifiedAccount;
/// use actix_web::HttpResponse;
///
/// async fn me(account: VerifiedAccount) -> HttpResponse {
///     HttpResponse::Ok().json(account.account())
/// }
/// ```
#[derive(Clone)]
pub struct VerifiedAccount {
    account: Arc<Account>,
    token: RequestToken,
    verified_by: VerifierId,
    /// The max age it was verified within, if the route had one.
    within: Option<Duration>,
}

/// The identity of the verifier that made a [`VerifiedAccount`]: the
/// address of its shared allocation, unique while it is alive (and the
/// verifier that compares is alive, as is the one that verified the request
/// being served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VerifierId(usize);

impl VerifierId {
    pub(crate) fn of(verifier: &Arc<dyn crate::verify::Verifier>) -> Self {
        Self(Arc::as_ptr(verifier).cast::<()>() as usize)
    }
}

impl VerifiedAccount {
    /// The account id.
    pub fn id(&self) -> &str {
        &self.account.id
    }

    /// The phone the user logged in with, if any.
    pub fn phone(&self) -> Option<&Phone> {
        self.account.phone.as_ref()
    }

    /// The email address the user logged in with, if any.
    pub fn email(&self) -> Option<&str> {
        self.account.email.as_ref().map(|e| e.address.as_str())
    }

    /// The app the token was issued for.
    pub fn application_id(&self) -> Option<&str> {
        self.account.application_id()
    }

    /// The whole account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The shared account.
    pub fn account_arc(&self) -> &Arc<Account> {
        &self.account
    }

    /// The token this request carried, e.g. to log it out through the
    /// [`AdminClient`](crate::admin::AdminClient). Do not log it.
    pub fn token(&self) -> &str {
        self.token.expose_secret()
    }
}

impl fmt::Debug for VerifiedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedAccount")
            .field("account", &self.account)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// `Some` verified caller, or `None` when the request carried no token at
/// all. A refused token is still a 401 and an outage still a 503.
///
/// ```
/// use actix_accountkit::MaybeAccount;
///
/// async fn greet(MaybeAccount(account): MaybeAccount) -> String {
///     match account {
///         Some(account) => format!("hello {}", account.id()),
///         None => "hello stranger".to_owned(),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct MaybeAccount(pub Option<VerifiedAccount>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Account;
    use crate::verify::Verification;

    #[test]
    fn a_refusal_answers_as_the_middleware_does() {
        let cases = [
            (
                Refusal::MissingToken,
                401,
                Some("Bearer realm=\"accountkit\""),
            ),
            (Refusal::Malformed(Malformed::Ambiguous), 400, None),
            (Refusal::Malformed(Malformed::Empty), 401, None),
            (Refusal::InvalidToken { subcode: None }, 401, None),
            (Refusal::WrongApp, 401, None),
            (Refusal::Overloaded, 503, None),
        ];
        for (refusal, status, challenge) in cases {
            let response = refusal.error_response();
            assert_eq!(response.status().as_u16(), status, "{refusal:?}");
            assert_eq!(refusal.status_code().as_u16(), status);
            let got = response.headers().get(header::WWW_AUTHENTICATE);
            if let Some(challenge) = challenge {
                assert_eq!(got.unwrap(), challenge);
            }
            assert_eq!(got.is_some(), status != 503);
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                status == 503
            );
        }
    }

    /// Refuses what it is asked (`WrongApp`), and would accept anything
    /// from its memory (`verify_now`); no `recall` of its own.
    struct Remembers;

    impl Verifier for Remembers {
        fn verify<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Verification> {
            Box::pin(async { Err(Refusal::WrongApp) })
        }
        fn verify_now(&self, _: &str) -> Option<Verification> {
            Some(Ok(Arc::new(Account::new("1000000000000003"))))
        }
    }

    /// The default recall answers from `verify_now`, after the syntax check
    /// (which must come first: `Remembers` would accept anything).
    #[test]
    fn a_verifier_without_recall_answers_from_verify_now_after_the_check() {
        let auth = AccountKitAuth::new(Remembers);
        let start = |value: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request();
            auth.start(&req)
        };
        assert!(
            matches!(start("Bearer fine"), Step::Decided(Ok(v)) if v.id() == "1000000000000003"),
            "answered at once, from verify_now"
        );
        assert!(matches!(
            start("Bearer ab#c"),
            Step::Decided(Err(Refusal::Malformed(Malformed::BadCharacter)))
        ));
        assert!(matches!(
            start("Bearer two words"),
            Step::Decided(Err(Refusal::Malformed(Malformed::Ambiguous)))
        ));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = AccountKitAuth::builder(Remembers)
            .realm("caf\u{e9}")
            .build();
        assert!(matches!(bad, Err(ConfigError::InvalidRealm)));
        let bad = AccountKitAuth::builder(Remembers).token_sources([]).build();
        assert!(matches!(bad, Err(ConfigError::NoTokenSource)));
        let good = AccountKitAuth::builder(Remembers)
            .realm("shop \"main\"")
            .build();
        assert!(good.is_ok());
    }
}
