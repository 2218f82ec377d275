//! The demo: a small API protected by Account Kit, on the embedded emulator.
//!
//! ```text
//! cargo run --example demo --features emulator [-- --addr 127.0.0.1:8080]
//! ```
//!
//! With any `ACCOUNTKIT_*` variable of `Config::from_env` set
//! (`ACCOUNTKIT_APP_ID`, `ACCOUNTKIT_APP_SECRET`, `ACCOUNTKIT_CLIENT_TOKEN`,
//! `ACCOUNTKIT_API_VERSION`, `ACCOUNTKIT_BASE_URL`,
//! `ACCOUNTKIT_EMULATOR_HOST`), the configuration comes from the environment
//! and it talks to that service instead of starting the emulator; a bad
//! value exits with status 2, naming the variable.
//!
//! At start it runs `AccountKit::check`: credentials refused (a wrong
//! Account Kit app secret or app id) exit with status 1 and a message
//! naming the app id (never the secret), and so does the default endpoint
//! (the real service, shut down: the message points at the emulator); an
//! endpoint that cannot be reached is logged as a warning and the server
//! starts anyway (an outage during a deploy must not crash-loop a fleet).
//!
//! With `ACCOUNTKIT_REDIS_URL` set (and `--features emulator,redis`), the
//! cache is shared through Redis and revocations are broadcast, so several
//! demo processes behave as one (`rediss://` for TLS, with
//! `ACCOUNTKIT_REDIS_CA_CERT` naming the CA's PEM file if it is private;
//! `ACCOUNTKIT_REDIS_CLUSTER`, comma-separated node URLs, for a
//! cluster). Each process embeds its own emulator unless pointed at one, so
//! to try two instances by hand, run one emulator and point both at it:
//!
//! ```text
//! cargo run --features cli --bin accountkit-emulator -- --addr 127.0.0.1:8787 \
//!     --app-id 390265671523337 --app-secret demo-secret --require-appsecret-proof
//! export ACCOUNTKIT_EMULATOR_HOST=127.0.0.1:8787 ACCOUNTKIT_APP_ID=390265671523337 \
//!     ACCOUNTKIT_APP_SECRET=demo-secret ACCOUNTKIT_REDIS_URL=redis://127.0.0.1:6379/
//! cargo run --example demo --features emulator,redis -- --addr 127.0.0.1:8080 &
//! cargo run --example demo --features emulator,redis -- --addr 127.0.0.1:8081 &
//! ```
//!
//! Then log in through 8080 (the walkthrough it prints), call `/me` on 8081
//! (answered from Redis: `/stats` shows `shared_hits`), log out on 8080, and
//! call `/me` on 8081 again: 401.
//!
//! Routes: `GET /` (public), `POST /login` `{"code": "…"}` (exchange),
//! `GET /me` and `POST /logout` (protected), `GET /me/fresh` (`/me` with a
//! max age of one second: a token logged out at Account Kit by another
//! service is refused there within a second), `GET /stats` (cache counters),
//! `GET /metrics` (Prometheus, with `--features emulator,prometheus`).

use std::net::SocketAddr;

use actix_accountkit::cache::CachedVerifier;
use actix_accountkit::config;
use actix_accountkit::emulator::{Emulator, EmulatorApp};
use actix_accountkit::{AccountKit, AccountKitBuilder, AdminClient, Config, VerifiedAccount};
use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;

const DEMO_APP_ID: &str = "390265671523337";
const DEMO_APP_SECRET: &str = "demo-account-kit-app-secret";

#[derive(Parser, Debug)]
#[command(about = "An actix-web API protected by Account Kit tokens")]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// actix-web worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Deserialize)]
struct Login {
    code: String,
}

async fn index() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "hello": "world", "protected": ["/me", "/logout"] }))
}

/// Errors answer themselves: an invalid code is 400 `invalid_grant`,
/// Account Kit down is 503 with `Retry-After` (`actix_accountkit::Error`
/// implements `ResponseError`).
async fn login(
    admin: web::Data<AdminClient>,
    body: web::Json<Login>,
) -> Result<HttpResponse, actix_accountkit::Error> {
    let exchange = admin.exchange_code(&body.code).await?;
    Ok(HttpResponse::Ok().json(json!({
        "account_id": exchange.id,
        "access_token": exchange.access_token.expose_secret(),
    })))
}

async fn me(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().json(account.account())
}

async fn logout(
    admin: web::Data<AdminClient>,
    account: VerifiedAccount,
) -> Result<HttpResponse, actix_accountkit::Error> {
    admin.logout(account.token()).await?;
    Ok(HttpResponse::Ok().json(json!({ "logged_out": account.id() })))
}

async fn stats(cache: web::Data<CachedVerifier>) -> HttpResponse {
    let s = cache.stats();
    let mut body = serde_json::to_value(s).unwrap_or_default();
    body["hit_rate"] = json!(s.hit_rate());
    HttpResponse::Ok().json(body)
}

/// Variables that, when any is set, mean the environment names a service.
const SERVICE_VARS: [&str; 6] = [
    config::ENV_APP_ID,
    config::ENV_APP_SECRET,
    config::ENV_CLIENT_TOKEN,
    config::ENV_API_VERSION,
    config::ENV_BASE_URL,
    config::ENV_EMULATOR_HOST,
];

/// The embedded emulator, or nothing if the environment names a service.
fn upstream() -> std::io::Result<(Config, Option<Emulator>)> {
    let named = SERVICE_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if named {
        let config = Config::from_env().unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2);
        });
        return Ok((config, None));
    }
    let invalid = |e: actix_accountkit::Error| std::io::Error::other(e.to_string());
    let emulator = Emulator::builder()
        .app(EmulatorApp::new(DEMO_APP_ID, DEMO_APP_SECRET).require_appsecret_proof(true))
        .build()?;
    let config = Config::builder(DEMO_APP_ID, DEMO_APP_SECRET)
        .base_url(emulator.base_url())
        .build()
        .map_err(invalid)?;
    Ok((config, Some(emulator)))
}

/// Fails fast on refused credentials or the shut-down service; warns and
/// goes on when the endpoint cannot be reached.
async fn check_at_start(kit: &AccountKit) {
    match kit.check().await {
        Ok(()) => tracing::info!("Account Kit credentials checked"),
        Err(e) if e.is_definite() => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            tracing::warn!("starting anyway; protected routes answer 503 until this is fixed: {e}")
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_accountkit=info".into()),
        )
        .init();
    let args = Args::parse();
    // ACCOUNTKIT_REDIS_URL (one server) or ACCOUNTKIT_REDIS_CLUSTER (a
    // cluster's nodes, comma-separated), and ACCOUNTKIT_REDIS_CA_CERT (a
    // PEM file, the CA of a rediss:// server): read by RedisTier::from_env.
    let redis_var = [
        "ACCOUNTKIT_REDIS_URL",
        "ACCOUNTKIT_REDIS_CLUSTER",
        "ACCOUNTKIT_REDIS_CA_CERT",
    ]
    .into_iter()
    .find(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    if let (Some(name), false) = (redis_var, cfg!(feature = "redis")) {
        eprintln!(
            "{name} is set, but the demo was built without the `redis` feature:\n  \
             cargo run --example demo --features emulator,redis\n\
             (or unset {name} for a cache local to this process)"
        );
        std::process::exit(2);
    }
    let (config, emulator) = upstream()?;
    let upstream_url = config.base_url().to_string();
    let kit = with_redis(AccountKit::builder(config.clone()), &config)?
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    check_at_start(&kit).await;

    let admin = web::Data::new(kit.admin().clone());
    let cache = web::Data::new(kit.cache().clone());
    let auth = kit.auth().clone();
    #[cfg(feature = "prometheus")]
    let metrics = actix_accountkit::metrics::endpoint("/metrics", {
        let mut registry = actix_accountkit::metrics::Registry::default();
        kit.register_metrics(&mut registry);
        registry
    });
    #[cfg(not(feature = "prometheus"))]
    let metrics = |_: &mut web::ServiceConfig| {};
    // `/me/fresh`: `/me` for routes that must not trust an old verification
    // (payments, account changes): re-verified upstream once a second.
    let fresh = auth.max_age(std::time::Duration::from_secs(1));
    #[cfg_attr(not(feature = "prometheus"), allow(clippy::clone_on_copy))]
    let mut server = HttpServer::new(move || {
        App::new()
            .configure(metrics.clone())
            .app_data(admin.clone())
            .app_data(cache.clone())
            .route("/", web::get().to(index))
            .route("/login", web::post().to(login))
            .route("/stats", web::get().to(stats))
            // Each protected resource wrapped on its own: no extra scope to
            // route through, so a protected request costs what the
            // middleware costs.
            .service(
                web::resource("/me")
                    .wrap(auth.clone())
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/me/fresh")
                    .wrap(fresh.clone())
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/logout")
                    .wrap(auth.clone())
                    .route(web::post().to(logout)),
            )
    })
    .bind(args.addr)?;
    if let Some(workers) = args.workers {
        server = server.workers(workers);
    }
    let bound = server.addrs().first().copied().unwrap_or(args.addr);
    print_walkthrough(bound, &upstream_url, emulator.as_ref());
    server.run().await
}

/// Several instances as one cache, when `ACCOUNTKIT_REDIS_URL` or
/// `ACCOUNTKIT_REDIS_CLUSTER` is set.
#[cfg(feature = "redis")]
fn with_redis(builder: AccountKitBuilder, config: &Config) -> std::io::Result<AccountKitBuilder> {
    let tier = actix_accountkit::redis::RedisTier::from_env(config)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let Some(tier) = tier else {
        return Ok(builder);
    };
    let tier = tier
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    // The URL may hold a password: not printed.
    println!("Redis: shared cache and revocation broadcast on (see /stats → shared)");
    Ok(builder.shared_tier(tier))
}

/// Without the `redis` feature, `main` refused the Redis variables.
#[cfg(not(feature = "redis"))]
fn with_redis(builder: AccountKitBuilder, _config: &Config) -> std::io::Result<AccountKitBuilder> {
    Ok(builder)
}

fn print_walkthrough(addr: SocketAddr, upstream: &str, emulator: Option<&Emulator>) {
    let app = format!("http://{addr}");
    match emulator {
        Some(e) => {
            let emu = e.base_url();
            println!("Account Kit emulator: {emu}");
            println!("Demo API:             {app}");
            println!();
            println!("Try it:");
            println!("  # 1. log in on a 'device' (what the SDK does): get an authorization code");
            println!(
                "  CODE=$(curl -s -X POST {emu}/_emulator/login -H 'content-type: application/json' \\\n       -d '{{\"phone\":\"+15551234567\"}}' | sed 's/.*\"code\":\"\\([^\"]*\\)\".*/\\1/')"
            );
            println!("  # 2. exchange it on the server");
            println!(
                "  TOKEN=$(curl -s -X POST {app}/login -H 'content-type: application/json' \\\n       -d \"{{\\\"code\\\":\\\"$CODE\\\"}}\" | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')"
            );
            println!("  # 3. call a protected route (repeat it: the second call is a cache hit)");
            println!("  curl -s {app}/me -H \"Authorization: Bearer $TOKEN\"");
            println!("  curl -s {app}/stats");
            println!("  # 4. log out: the same token is refused at once");
            println!("  curl -s -X POST {app}/logout -H \"Authorization: Bearer $TOKEN\"");
            println!("  curl -si {app}/me -H \"Authorization: Bearer $TOKEN\"");
        }
        None => {
            println!("Account Kit service: {upstream}");
            println!("Demo API:            {app}");
        }
    }
}
