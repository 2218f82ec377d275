//! Extractors: [`VerifiedAccount`] (a verified caller, or the request is
//! refused) and [`MaybeAccount`] (anonymous callers allowed, refused tokens
//! and outages are not).
//!
//! Both first read what [`AccountKitAuth`] left in the request extensions,
//! so nothing is verified twice, but only if it was made by the verifier of
//! the [`AccountKitAuth`] registered as app data (when one is): a
//! verification counts only for the verifier that made it. Without the middleware they verify the
//! request themselves with the [`AccountKitAuth`] registered as app data
//! (`App::app_data(auth.clone())` or `web::Data::new(auth)`), so a single
//! handler can be protected by its signature alone.
//!
//! # Why not `Option<VerifiedAccount>`
//!
//! actix-web's blanket `Option<T>` extractor turns *every* error into
//! `None`: a refused token would become an anonymous caller, and so would
//! every request while Account Kit is down. [`MaybeAccount`] is `None` only
//! when no token was sent.

use std::fmt;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures::future::{self, Either, LocalBoxFuture, Ready};

use crate::middleware::{AccountKitAuth, Step};
use crate::token::RequestToken;
use crate::types::{Account, Phone};
use crate::verify::Refusal;

/// A caller whose Account Kit token was verified.
///
/// ```
/// use actix_accountkit::extract::VerifiedAccount;
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
    pub(crate) fn new(account: Arc<Account>, token: RequestToken, verified_by: VerifierId) -> Self {
        Self {
            account,
            token,
            verified_by,
        }
    }

    pub(crate) fn verified_by(&self) -> VerifierId {
        self.verified_by
    }

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
/// use actix_accountkit::extract::MaybeAccount;
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

type ExtractFuture<T> = Either<
    Ready<Result<T, actix_web::Error>>,
    LocalBoxFuture<'static, Result<T, actix_web::Error>>,
>;

impl FromRequest for VerifiedAccount {
    type Error = actix_web::Error;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, false, |found| match found {
            Some(account) => Ok(account),
            // `extract` answers "no token" itself when anonymous is not allowed.
            None => Err(missing_app_data()),
        })
    }
}

impl FromRequest for MaybeAccount {
    type Error = actix_web::Error;
    type Future = ExtractFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, true, |found| Ok(MaybeAccount(found)))
    }
}

/// The shared logic: extensions first, then the registered `AccountKitAuth`.
///
/// What the extensions hold counts only if the registered `AccountKitAuth`
/// (when there is one) made it: a route that registers another app's auth,
/// or a stricter verifier, inside a scope an outer middleware verified,
/// verifies again with its own.
fn extract<T: 'static>(
    req: &HttpRequest,
    anonymous_ok: bool,
    wrap: fn(Option<VerifiedAccount>) -> Result<T, actix_web::Error>,
) -> ExtractFuture<T> {
    let registered = registered_auth(req);
    if let Some(found) = req.extensions().get::<VerifiedAccount>() {
        if registered.is_none_or(|auth| auth.made(found)) {
            return Either::Left(future::ready(wrap(Some(found.clone()))));
        }
    }
    let Some(auth) = registered.cloned() else {
        return Either::Left(future::err(missing_app_data()));
    };
    let done = move |auth: &AccountKitAuth, req: &HttpRequest, outcome| match outcome {
        Ok(verified) => {
            req.extensions_mut()
                .insert(VerifiedAccount::clone(&verified));
            wrap(Some(verified))
        }
        Err(refusal) => Err(refused(auth, req, refusal)),
    };
    match auth.start(req) {
        Step::Anonymous if anonymous_ok => Either::Left(future::ready(wrap(None))),
        Step::Anonymous => Either::Left(future::err(refused(&auth, req, Refusal::MissingToken))),
        Step::Decided(outcome) => Either::Left(future::ready(done(&auth, req, outcome))),
        Step::Pending(token) => {
            let req = req.clone();
            Either::Right(Box::pin(async move {
                let outcome = auth.finish(token).await;
                done(&auth, &req, outcome)
            }))
        }
    }
}

fn registered_auth(req: &HttpRequest) -> Option<&AccountKitAuth> {
    req.app_data::<AccountKitAuth>().or_else(|| {
        req.app_data::<web::Data<AccountKitAuth>>()
            .map(|d| d.get_ref())
    })
}

fn refused(auth: &AccountKitAuth, req: &HttpRequest, refusal: Refusal) -> actix_web::Error {
    let response = auth.error_response(req, &refusal);
    InternalError::from_response(refusal, response).into()
}

fn missing_app_data() -> actix_web::Error {
    const MESSAGE: &str = "VerifiedAccount needs an AccountKitAuth: wrap the route with it, or \
                           register it with App::app_data(auth.clone())";
    tracing::error!("{MESSAGE}");
    InternalError::from_response(
        MESSAGE,
        HttpResponse::InternalServerError().json(serde_json::json!({
            "error": "server_error",
            "error_description": MESSAGE,
        })),
    )
    .into()
}
