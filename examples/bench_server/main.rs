//! The servers `scripts/e2e.sh` compares, one `--kind` each, all serving
//! the same `GET /hello` with the same JSON body (`{"id":"<account id>"}`):
//!
//! * `bare`: no authentication at all (the ceiling);
//! * `peer`: what a user would build by hand instead of this crate
//!   (actix-web-httpauth's bearer middleware, a `moka::future` cache,
//!   reqwest to the upstream: see `peer.rs`);
//! * `crate`: the route behind [`AccountKit`], wrapped around the `App` and
//!   read with the [`VerifiedAccount`] extractor, as the README shows.
//!
//! `peer` and `crate` verify against the same upstream, the crate's own
//! emulator (`cargo run --example emulator`), with `appsecret_proof`.
//!
//! ```text
//! cargo build --release --example bench_server --example emulator --features emulator
//! target/release/examples/bench_server --kind crate --addr 127.0.0.1:18194 --workers 1 \
//!     --upstream http://127.0.0.1:18190 --app-id 1234 --app-secret bench-secret
//! ```

mod peer;

use std::net::SocketAddr;
use std::time::Duration;

use actix_accountkit::{AccountKit, CacheConfig, Config, VerifiedAccount};
use actix_web::{web, App, HttpResponse, HttpServer};
use clap::{Parser, ValueEnum};
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Bare,
    Peer,
    Crate,
}

/// One of the end-to-end benchmark's servers.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Which server.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:18191")]
    addr: SocketAddr,
    /// actix-web worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The Account Kit service (the emulator's base URL).
    #[arg(long, default_value = "http://127.0.0.1:18190")]
    upstream: String,
    /// The app id the tokens must be issued for.
    #[arg(long, default_value = "1234")]
    app_id: String,
    /// The Account Kit app secret (for `appsecret_proof`).
    #[arg(long, env = "BENCH_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// How long a verified token is cached, in seconds: long enough that no
    /// entry expires during a run.
    #[arg(long, default_value_t = 3600)]
    ttl_s: u64,
    /// Cached tokens.
    #[arg(long, default_value_t = 10_000)]
    capacity: usize,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The body every server answers with (the same length for all three: the
/// emulator's account ids have 16 digits, as bare's fixed one).
#[derive(Serialize)]
struct Hello<'a> {
    id: &'a str,
}

async fn bare_hello() -> HttpResponse {
    HttpResponse::Ok().json(Hello {
        id: "1000000000000000",
    })
}

async fn crate_hello(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().json(Hello { id: account.id() })
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let ttl = Duration::from_secs(args.ttl_s);
    let server = match args.kind {
        Kind::Bare => HttpServer::new(|| App::new().route("/hello", web::get().to(bare_hello)))
            .workers(args.workers)
            .bind(args.addr)?
            .run(),
        Kind::Peer => {
            let state = peer::State::new(
                &args.upstream,
                &args.app_id,
                &args.app_secret,
                ttl,
                args.capacity,
            )
            .map_err(other)?;
            peer::server(state, args.workers, args.addr)?
        }
        Kind::Crate => {
            let config = Config::builder(args.app_id, args.app_secret)
                .base_url(args.upstream)
                .build()
                .map_err(other)?;
            let cache = CacheConfig::builder()
                .capacity(args.capacity)
                .ttl(ttl)
                .build()
                .map_err(other)?;
            let kit = AccountKit::builder(config)
                .cache(cache)
                .build()
                .map_err(other)?;
            HttpServer::new(move || {
                App::new()
                    .wrap(kit.auth().clone())
                    .route("/hello", web::get().to(crate_hello))
            })
            .workers(args.workers)
            .bind(args.addr)?
            .run()
        }
    };
    eprintln!(
        "{:?} on http://{} ({} worker(s))",
        args.kind, args.addr, args.workers
    );
    server.await
}
