//! `accountkit-emulator`: a standalone Account Kit emulator.
//!
//! ```text
//! cargo install actix-accountkit --features cli
//! accountkit-emulator --addr 127.0.0.1:8787 --app-id 1234 --app-secret SECRET \
//!     [--client-token T] [--accounts N] [--require-appsecret-proof] \
//!     [--extra-app ID:SECRET]...
//! ```
//!
//! (From a clone: `cargo run --features cli --bin accountkit-emulator -- …`,
//! or `cargo run --example emulator --features emulator -- …`, which is
//! this same program.) The app secret may come from `ACCOUNTKIT_APP_SECRET`
//! instead of `--app-secret`.
//!
//! Prints the base URL alone on one line once it accepts connections, then
//! serves until Ctrl-C. Set `RUST_LOG=debug` to see requests (method and
//! path only). Drive it from Rust tests with
//! `actix_accountkit::emulator::EmulatorControl::new(BASE_URL)`.

use std::net::SocketAddr;
use std::task::Poll;

use actix_accountkit::emulator::{Emulator, EmulatorApp};
use clap::Parser;

/// Serve an Account Kit emulator (graph.accountkit.com look-alike).
#[derive(Parser)]
#[command(name = "accountkit-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// Id of the default app.
    #[arg(long)]
    app_id: String,
    /// Account Kit app secret of the default app.
    #[arg(long, env = "ACCOUNTKIT_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Client token of the default app (`AA|id|client_token` for code exchanges).
    #[arg(long)]
    client_token: Option<String>,
    /// Number of accounts to create in the default app.
    #[arg(long, default_value_t = 0)]
    accounts: usize,
    /// Require an appsecret_proof on user-token calls (every app).
    #[arg(long)]
    require_appsecret_proof: bool,
    /// Another app, as ID:SECRET (repeatable).
    #[arg(long, value_parser = parse_extra_app)]
    extra_app: Vec<(String, String)>,
}

fn parse_extra_app(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok((id.to_owned(), secret.to_owned()))
        }
        _ => Err("expected ID:SECRET".to_owned()),
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("addr", &self.addr)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut default_app = EmulatorApp::new(args.app_id, args.app_secret)
        .require_appsecret_proof(args.require_appsecret_proof);
    if let Some(token) = args.client_token {
        default_app = default_app.client_token(token);
    }
    let mut builder = Emulator::builder()
        .app(default_app)
        .addr(args.addr)
        .seed_accounts(args.accounts);
    for (id, secret) in args.extra_app {
        builder = builder.app(
            EmulatorApp::new(id, secret).require_appsecret_proof(args.require_appsecret_proof),
        );
    }
    // `start` returns once the socket listens; it blocks only briefly.
    let emulator = tokio::task::spawn_blocking(move || builder.build()).await??;
    // Ctrl-C is handled from the first poll of `ctrl_c`: poll it once
    // before saying we are ready, so that an early Ctrl-C stops us cleanly.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    match futures::poll!(&mut interrupted) {
        Poll::Ready(result) => result?,
        Poll::Pending => {
            println!("{}", emulator.base_url());
            interrupted.await?;
        }
    }
    tokio::task::spawn_blocking(move || drop(emulator)).await?;
    Ok(())
}
