//! Extractors: [`VerifiedAccount`] (a verified caller, or the request is
//! refused) and [`MaybeAccount`] (anonymous callers allowed, refused tokens
//! and outages are not).
//!
//! Both first read what the middleware left in the request extensions, so
//! nothing is verified twice, but only if the verifier of the
//! [`AccountKitAuth`] registered as app data (when one is) made it: a
//! verification counts only for the verifier that made it. Without the
//! middleware they verify the request themselves with the [`AccountKitAuth`]
//! registered as app data (`App::app_data(auth.clone())` or
//! `web::Data::new(auth)`), so a single handler can be protected by its
//! signature alone. Register every `AccountKitAuth` of an app in one of the
//! two forms: a route that finds one of each form (at any levels) that are
//! not clones of one value is answered with a 500 naming the mistake, since
//! actix-web cannot tell which of two types is registered closer.
//!
//! # Why not `Option<VerifiedAccount>`
//!
//! actix-web's blanket `Option<T>` extractor turns *every* error into
//! `None`: a refused token would become an anonymous caller, and so would
//! every request while Account Kit is down. [`MaybeAccount`] is `None` only
//! when no token was sent.

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures::future::{self, Either, LocalBoxFuture, Ready};

/// The extracted types live with the middleware that shares their state;
/// they are named here too, where the extractors are implemented.
pub use crate::auth::{MaybeAccount, VerifiedAccount};

use crate::auth::{AccountKitAuth, Step};
use crate::verify::Refusal;

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
    let registered = match registered_auth(req) {
        Ok(registered) => registered,
        Err(conflict) => return Either::Left(future::err(conflict)),
    };
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

/// The `AccountKitAuth` registered for this route, in either form.
///
/// actix-web looks each type up from the innermost scope outwards, but the
/// two forms are two types: a plain one registered on the `App` would be
/// found before a `web::Data` one on the route's own scope, and the route
/// would trust (or verify with) the outer verifier, or read the token where
/// the outer one does, instead of as its own does. So when both forms are
/// found and are not one value, which one is the route's cannot be told,
/// and the request is refused (a 500 that says so) rather than guessed.
fn registered_auth(req: &HttpRequest) -> Result<Option<&AccountKitAuth>, actix_web::Error> {
    let plain = req.app_data::<AccountKitAuth>();
    let data = req
        .app_data::<web::Data<AccountKitAuth>>()
        .map(|d| d.get_ref());
    match (plain, data) {
        (Some(a), Some(b)) if !a.is(b) => Err(server_error(CONFLICTING_APP_DATA)),
        (a, b) => Ok(a.or(b)),
    }
}

fn refused(auth: &AccountKitAuth, req: &HttpRequest, refusal: Refusal) -> actix_web::Error {
    let response = auth.error_response(req, &refusal);
    InternalError::from_response(refusal, response).into()
}

const CONFLICTING_APP_DATA: &str =
    "two AccountKitAuth (not clones of one) are registered for this route, one as \
     app_data(auth) and one as app_data(web::Data::new(auth)), and which is the route's own \
     cannot be told: register every AccountKitAuth in one form";

fn missing_app_data() -> actix_web::Error {
    server_error(
        "VerifiedAccount needs an AccountKitAuth: wrap the route with it, or register it with \
         App::app_data(auth.clone())",
    )
}

/// A configuration mistake: logged, and answered as a 500 that names it.
fn server_error(message: &'static str) -> actix_web::Error {
    tracing::error!("{message}");
    InternalError::from_response(
        message,
        HttpResponse::InternalServerError().json(serde_json::json!({
            "error": "server_error",
            "error_description": message,
        })),
    )
    .into()
}
