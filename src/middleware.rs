//! The actix-web middleware: find the token, verify it, put the
//! [`VerifiedAccount`] in the request extensions, or answer the refusal.
//!
//! Failures become responses inside the middleware (not `Err`), so CORS,
//! logging and other middleware wrapped outside still see them. The answers
//! follow RFC 6750 §3:
//!
//! | refusal | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no token | 401 | `Bearer realm="…"` (no error code, §3.1) |
//! | more than one token (two headers, two sources, a repeated parameter) | 400 | `Bearer realm="…", error="invalid_request", error_description="…"` |
//! | malformed, refused by Account Kit, other app | 401 | `Bearer realm="…", error="invalid_token", error_description="…"` |
//! | Account Kit unavailable, server misconfigured | 503 | none; `Retry-After` instead |
//!
//! with a JSON body `{"error": …, "error_description": …}` and
//! `Cache-Control: no-store`. [`AccountKitAuth::error_handler`] reshapes them.

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use futures::future::{self, Either, LocalBoxFuture, MapOk, Ready, TryFutureExt};

use crate::extract::{VerifiedAccount, VerifierId};
use crate::token::{find_token, Malformed, Presented, RequestToken, TokenSource};
use crate::verify::{Refusal, Verifier};

/// The realm of the `WWW-Authenticate` challenge. Default is `accountkit`.
pub const DEFAULT_REALM: &str = "accountkit";
/// `Retry-After` of a 503, in seconds. Default is 5.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

type ErrorHandler = Arc<dyn Fn(&HttpRequest, &Refusal, HttpResponse) -> HttpResponse + Send + Sync>;

/// Protects an `App`, a scope or a single resource: every request must carry
/// a token the verifier accepts.
///
/// The same value, registered as app data, also lets the [`VerifiedAccount`]
/// and [`MaybeAccount`](crate::extract::MaybeAccount) extractors verify
/// requests on routes the middleware does not wrap. Cheap to clone.
///
/// ```
/// use actix_accountkit::middleware::AccountKitAuth;
/// use actix_accountkit::extract::VerifiedAccount;
/// use actix_accountkit::token::TokenSource;
/// use actix_web::{web, App, HttpResponse};
/// # use actix_accountkit::{types::Account, verify::{Refusal, Verifier}};
/// # use futures::future::{BoxFuture, FutureExt};
/// # use std::sync::Arc;
/// # struct AnyVerifier;
/// # impl Verifier for AnyVerifier {
/// #     fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
/// #         async { Err(Refusal::InvalidToken { subcode: None }) }.boxed()
/// #     }
/// # }
///
/// let auth = AccountKitAuth::new(AnyVerifier)
///     .realm("example")
///     .token_sources([TokenSource::BearerHeader, TokenSource::cookie("ak_token")]);
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
/// # let _ = app;
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
    /// Built once: the challenge without and with `error="invalid_token"`.
    challenge: HeaderValue,
    invalid_challenges: InvalidChallenges,
    retry_after_value: HeaderValue,
    error_handler: Option<ErrorHandler>,
}

struct InvalidChallenges {
    /// `error="invalid_request"`: more than one token (400).
    ambiguous: HeaderValue,
    malformed: HeaderValue,
    refused: HeaderValue,
    wrong_app: HeaderValue,
}

impl AccountKitAuth {
    /// Protects routes with `verifier` (usually a
    /// [`CachedVerifier`](crate::cache::CachedVerifier)).
    pub fn new(verifier: impl Verifier) -> Self {
        Self::from_arc(Arc::new(verifier))
    }

    /// Like [`new`](Self::new), with a shared verifier.
    pub fn from_arc(verifier: Arc<dyn Verifier>) -> Self {
        Self::build(
            verifier,
            vec![TokenSource::BearerHeader].into(),
            DEFAULT_REALM.into(),
            DEFAULT_RETRY_AFTER,
            None,
        )
    }

    fn build(
        verifier: Arc<dyn Verifier>,
        sources: Box<[TokenSource]>,
        realm: Box<str>,
        retry_after: Duration,
        error_handler: Option<ErrorHandler>,
    ) -> Self {
        let quoted = quote(&realm);
        let challenge = header_value(&format!("Bearer realm=\"{quoted}\""));
        let invalid = |description: &str| {
            header_value(&format!(
                "Bearer realm=\"{quoted}\", error=\"invalid_token\", error_description=\"{description}\""
            ))
        };
        let invalid_challenges = InvalidChallenges {
            ambiguous: header_value(&format!(
                "Bearer realm=\"{quoted}\", error=\"invalid_request\", error_description=\"{DESC_AMBIGUOUS}\""
            )),
            malformed: invalid(DESC_MALFORMED),
            refused: invalid(DESC_REFUSED),
            wrong_app: invalid(DESC_WRONG_APP),
        };
        let retry_after_value = header_value(&retry_after.as_secs().max(1).to_string());
        Self {
            inner: Arc::new(AuthInner {
                verifier_id: VerifierId::of(&verifier),
                verifier,
                sources,
                realm,
                retry_after,
                challenge,
                invalid_challenges,
                retry_after_value,
                error_handler,
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut RebuildParts)) -> Self {
        let inner = &self.inner;
        let mut parts = RebuildParts {
            sources: inner.sources.clone(),
            realm: inner.realm.clone(),
            retry_after: inner.retry_after,
            error_handler: inner.error_handler.clone(),
        };
        f(&mut parts);
        Self::build(
            inner.verifier.clone(),
            parts.sources,
            parts.realm,
            parts.retry_after,
            parts.error_handler,
        )
    }

    /// Where to look for the token. Exactly one source may find one: a token
    /// sent by two of them is refused with 400 `invalid_request` (RFC 6750
    /// §3.1). Default is `[TokenSource::BearerHeader]`.
    pub fn token_sources(self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        let sources: Box<[TokenSource]> = sources.into_iter().collect();
        self.rebuild(|p| {
            p.sources = if sources.is_empty() {
                vec![TokenSource::BearerHeader].into()
            } else {
                sources
            }
        })
    }

    /// The realm named in the challenge. Default is [`DEFAULT_REALM`].
    pub fn realm(self, realm: &str) -> Self {
        self.rebuild(|p| p.realm = realm.into())
    }

    /// `Retry-After` of a 503 (whole seconds, at least 1). Default is
    /// [`DEFAULT_RETRY_AFTER`].
    pub fn retry_after(self, after: Duration) -> Self {
        self.rebuild(|p| p.retry_after = after)
    }

    /// Reshapes every refusal's response: the function receives the request,
    /// the refusal and the default response, and returns the response to
    /// send. Default is none (the RFC 6750 responses above).
    ///
    /// ```
    /// # use actix_accountkit::middleware::AccountKitAuth;
    /// # fn f(auth: AccountKitAuth) -> AccountKitAuth {
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
        self,
        f: impl Fn(&HttpRequest, &Refusal, HttpResponse) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.rebuild(|p| p.error_handler = Some(Arc::new(f)))
    }

    /// The verifier.
    pub fn verifier(&self) -> &Arc<dyn Verifier> {
        &self.inner.verifier
    }

    /// Whether `verified` was made by this value's verifier (and so may be
    /// trusted without verifying again).
    pub(crate) fn made(&self, verified: &VerifiedAccount) -> bool {
        verified.verified_by() == self.inner.verifier_id
    }

    /// Authenticates a request as far as it can without waiting (shared by
    /// the middleware and the extractors, so they cannot drift apart).
    pub(crate) fn start(&self, req: &HttpRequest) -> Step {
        match find_token(req, &self.inner.sources) {
            Presented::Absent => Step::Anonymous,
            Presented::Malformed(m) => Step::Decided(Err(Refusal::Malformed(m))),
            Presented::Token(token) => {
                match self.inner.verifier.verify_now(token.expose_secret()) {
                    Some(outcome) => Step::Decided(
                        outcome.map(|a| VerifiedAccount::new(a, token, self.inner.verifier_id)),
                    ),
                    None => Step::Pending(token),
                }
            }
        }
    }

    /// Finishes a [`Step::Pending`]: asks the verifier.
    pub(crate) async fn finish(&self, token: RequestToken) -> Result<VerifiedAccount, Refusal> {
        let outcome = self.inner.verifier.verify(token.expose_secret()).await;
        outcome.map(|account| VerifiedAccount::new(account, token, self.inner.verifier_id))
    }

    /// The response to a refusal: logged for the operator where it is the
    /// server's problem, then shaped by the error handler if one is set.
    pub fn error_response(&self, req: &HttpRequest, refusal: &Refusal) -> HttpResponse {
        log_refusal(req, refusal);
        let default = self.default_response(refusal);
        match &self.inner.error_handler {
            Some(handler) => handler(req, refusal, default),
            None => default,
        }
    }

    fn default_response(&self, refusal: &Refusal) -> HttpResponse {
        let challenges = &self.inner.invalid_challenges;
        let (status, challenge, error, description) = match refusal {
            Refusal::MissingToken => (
                StatusCode::UNAUTHORIZED,
                Some(&self.inner.challenge),
                "unauthorized",
                "no access token was sent",
            ),
            Refusal::Malformed(Malformed::Ambiguous) => (
                StatusCode::BAD_REQUEST,
                Some(&challenges.ambiguous),
                "invalid_request",
                DESC_AMBIGUOUS,
            ),
            Refusal::Malformed(_) => (
                StatusCode::UNAUTHORIZED,
                Some(&challenges.malformed),
                "invalid_token",
                DESC_MALFORMED,
            ),
            Refusal::InvalidToken { .. } => (
                StatusCode::UNAUTHORIZED,
                Some(&challenges.refused),
                "invalid_token",
                DESC_REFUSED,
            ),
            Refusal::WrongApp => (
                StatusCode::UNAUTHORIZED,
                Some(&challenges.wrong_app),
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
            None => {
                response.insert_header((header::RETRY_AFTER, self.inner.retry_after_value.clone()))
            }
        };
        response.json(ErrorBody {
            error,
            error_description: description,
        })
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

struct RebuildParts {
    sources: Box<[TokenSource]>,
    realm: Box<str>,
    retry_after: Duration,
    error_handler: Option<ErrorHandler>,
}

impl fmt::Debug for AccountKitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKitAuth")
            .field("sources", &self.inner.sources)
            .field("realm", &self.inner.realm)
            .field("retry_after", &self.inner.retry_after)
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
            "too many Account Kit verifications in flight (CacheConfig::max_in_flight); answered 503"
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

impl<S, B> Transform<S, ServiceRequest> for AccountKitAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AccountKitAuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        future::ok(AccountKitAuthMiddleware {
            service: Rc::new(service),
            auth: self.clone(),
        })
    }
}

/// The service [`AccountKitAuth`] wraps around the inner one.
#[doc(hidden)]
pub struct AccountKitAuthMiddleware<S> {
    service: Rc<S>,
    auth: AccountKitAuth,
}

impl<S> fmt::Debug for AccountKitAuthMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKitAuthMiddleware")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

type Forward<F, B> = MapOk<F, fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B>>>;
type Answer<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;
/// A refusal (ready at once) or a verification on a cache miss (boxed).
type Slow<B> = Either<Ready<Answer<B>>, LocalBoxFuture<'static, Answer<B>>>;

impl<S, B> Service<ServiceRequest> for AccountKitAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    /// A cache hit forwards without boxing; a refusal is ready at once; only
    /// a miss needs a boxed future.
    type Future =
        Either<Forward<S::Future, B>, Either<Ready<Answer<B>>, LocalBoxFuture<'static, Answer<B>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let verified_here = req
            .extensions()
            .get::<VerifiedAccount>()
            .is_some_and(|v| self.auth.made(v));
        if verified_here {
            // An outer AccountKitAuth with the same verifier already verified
            // this request. One with another verifier (another app, a
            // stricter policy) does not count: verify again below.
            return Either::Left(forward(&self.service, req));
        }
        match self.auth.start(req.request()) {
            Step::Anonymous => refuse(&self.auth, req, &Refusal::MissingToken),
            Step::Decided(Err(refusal)) => refuse(&self.auth, req, &refusal),
            Step::Decided(Ok(verified)) => {
                req.extensions_mut().insert(verified);
                Either::Left(forward(&self.service, req))
            }
            Step::Pending(token) => {
                let service = Rc::clone(&self.service);
                let auth = self.auth.clone();
                Either::Right(Either::Right(Box::pin(async move {
                    match auth.finish(token).await {
                        Ok(verified) => {
                            req.extensions_mut().insert(verified);
                            service
                                .call(req)
                                .await
                                .map(ServiceResponse::map_into_left_body)
                        }
                        Err(refusal) => {
                            let response = auth.error_response(req.request(), &refusal);
                            Ok(req.into_response(response).map_into_right_body())
                        }
                    }
                })))
            }
        }
    }
}

fn forward<S, B>(service: &Rc<S>, req: ServiceRequest) -> Forward<S::Future, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    service
        .call(req)
        .map_ok(ServiceResponse::map_into_left_body as fn(_) -> _)
}

fn refuse<F, B>(
    auth: &AccountKitAuth,
    req: ServiceRequest,
    refusal: &Refusal,
) -> Either<F, Slow<B>> {
    let response = auth.error_response(req.request(), refusal);
    Either::Right(Either::Left(future::ok(
        req.into_response(response).map_into_right_body(),
    )))
}
