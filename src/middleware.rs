//! The actix-web middleware: [`AccountKitAuth`] as a [`Transform`]. It
//! finds the token, verifies it, puts the [`VerifiedAccount`] in the request
//! extensions, or answers the refusal (the answers are listed in
//! [`crate::auth`]).
//!
//! Failures become responses inside the middleware (not `Err`), so CORS,
//! logging and other middleware wrapped outside still see them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::HttpMessage;
use futures::future::{self, LocalBoxFuture, Ready};
use pin_project_lite::pin_project;

use crate::auth::{AccountKitAuth, Step, VerifiedAccount};
use crate::verify::Refusal;

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

type Answer<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

pin_project! {
    /// The middleware's response future: the inner service's future on a
    /// cache hit (no box), a refusal ready at once, or, on a cache miss, the
    /// verification followed by the inner service (boxed).
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Forward { #[pin] future: F },
        Refused { response: Option<ServiceResponse<EitherBody<B>>> },
        Verifying { future: LocalBoxFuture<'static, Answer<B>> },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Answer<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Forward { future } => {
                future.poll(cx).map_ok(ServiceResponse::map_into_left_body)
            }
            StateProj::Refused { response } => Poll::Ready(response.take().ok_or_else(|| {
                actix_web::error::ErrorInternalServerError(
                    "response future polled after completion",
                )
            })),
            StateProj::Verifying { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, B> Service<ServiceRequest> for AccountKitAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future, B>;

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
            return self.forward(req);
        }
        match self.auth.start(req.request()) {
            Step::Anonymous => self.refuse(req, &Refusal::MissingToken),
            Step::Decided(Err(refusal)) => self.refuse(req, &refusal),
            Step::Decided(Ok(verified)) => {
                req.extensions_mut().insert(verified);
                self.forward(req)
            }
            Step::Pending(token) => {
                let service = Rc::clone(&self.service);
                let auth = self.auth.clone();
                let future = Box::pin(async move {
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
                });
                ResponseFuture {
                    state: State::Verifying { future },
                }
            }
        }
    }
}

impl<S, B> AccountKitAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    fn forward(&self, req: ServiceRequest) -> ResponseFuture<S::Future, B> {
        ResponseFuture {
            state: State::Forward {
                future: self.service.call(req),
            },
        }
    }

    fn refuse(&self, req: ServiceRequest, refusal: &Refusal) -> ResponseFuture<S::Future, B> {
        let response = self.auth.error_response(req.request(), refusal);
        ResponseFuture {
            state: State::Refused {
                response: Some(req.into_response(response).map_into_right_body()),
            },
        }
    }
}
