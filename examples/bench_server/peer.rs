//! The peer: Account Kit verification as a competent user would write it
//! by hand, without this crate.
//!
//! actix-web-httpauth's `HttpAuthentication::bearer` middleware; its
//! validator looks the token up in a `moka::future::Cache` (TinyLFU
//! admission, a TTL), and on a miss asks `GET {upstream}/v1.3/me` with the
//! `appsecret_proof` (one upstream call per token however many requests
//! wait for it: `try_get_with`), checks `application.id`, and puts the
//! account in the request extensions for `web::ReqData`.
//!
//! Like most hand-built caches it keys by the token itself (moka hashes it
//! with its own hasher); errors are not cached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServiceRequest};
use actix_web::{error, web, App, Error, HttpMessage, HttpResponse, HttpServer};
use actix_web_httpauth::extractors::bearer::BearerAuth;
use actix_web_httpauth::middleware::HttpAuthentication;
use hmac::{KeyInit, Mac};
use moka::future::Cache;
use serde::Deserialize;

use super::Hello;

/// The verified account: what the handler needs of `/me`.
#[derive(Debug)]
struct Account {
    id: String,
}

#[derive(Deserialize)]
struct Me {
    id: String,
    application: MeApplication,
}

#[derive(Deserialize)]
struct MeApplication {
    id: String,
}

/// Why a token was not let in (not cached: the next request asks again).
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the token was refused")]
    Token,
    #[error("the token is for another app")]
    OtherApp,
    #[error("Account Kit unavailable: {0}")]
    Unavailable(#[from] reqwest::Error),
}

/// Shared by the workers.
pub struct State {
    cache: Cache<String, Arc<Account>>,
    http: reqwest::Client,
    me_url: String,
    app_id: String,
    proof_key: hmac::Hmac<sha2::Sha256>,
}

impl State {
    pub fn new(
        upstream: &str,
        app_id: &str,
        app_secret: &str,
        ttl: Duration,
        capacity: usize,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self {
            cache: Cache::builder()
                .max_capacity(u64::try_from(capacity)?)
                .time_to_live(ttl)
                .build(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            me_url: format!("{}/v1.3/me", upstream.trim_end_matches('/')),
            app_id: app_id.to_owned(),
            proof_key: hmac::Hmac::new_from_slice(app_secret.as_bytes())?,
        })
    }

    /// `GET /me` with the token and its `appsecret_proof`.
    async fn ask(&self, token: &str) -> Result<Arc<Account>, Refused> {
        let mut mac = self.proof_key.clone();
        mac.update(token.as_bytes());
        let proof = hex::encode(mac.finalize().into_bytes());
        let response = self
            .http
            .get(&self.me_url)
            .query(&[("access_token", token), ("appsecret_proof", &proof)])
            .send()
            .await?;
        if response.status().is_client_error() {
            return Err(Refused::Token);
        }
        let me: Me = response.error_for_status()?.json().await?;
        if me.application.id != self.app_id {
            return Err(Refused::OtherApp);
        }
        Ok(Arc::new(Account { id: me.id }))
    }
}

async fn validator(
    req: ServiceRequest,
    credentials: BearerAuth,
) -> Result<ServiceRequest, (Error, ServiceRequest)> {
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return Err((error::ErrorInternalServerError("no State registered"), req));
    };
    let token = credentials.token();
    let account = match state.cache.get(token).await {
        Some(account) => account,
        None => {
            let asked = state
                .cache
                .try_get_with(token.to_owned(), state.ask(token))
                .await;
            match asked {
                Ok(account) => account,
                Err(refused) => {
                    let error = match *refused {
                        Refused::Unavailable(_) => error::ErrorServiceUnavailable("try again"),
                        Refused::Token | Refused::OtherApp => {
                            error::ErrorUnauthorized("invalid token")
                        }
                    };
                    return Err((error, req));
                }
            }
        }
    };
    req.extensions_mut().insert(account);
    Ok(req)
}

async fn hello(account: web::ReqData<Arc<Account>>) -> HttpResponse {
    HttpResponse::Ok().json(Hello { id: &account.id })
}

/// The peer's server.
pub fn server(state: State, workers: usize, addr: SocketAddr) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(HttpAuthentication::bearer(validator))
            .route("/hello", web::get().to(hello))
    })
    .workers(workers)
    .bind(addr)?
    .run())
}
