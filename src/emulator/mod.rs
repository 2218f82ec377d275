//! An Account Kit emulator: an actix-web server that answers like
//! `graph.accountkit.com` did.
//!
//! Start one with [`Emulator::builder`], log users in through its control
//! endpoint, and point the crate (or any HTTP client) at
//! [`Emulator::base_url`] instead of `https://graph.accountkit.com`.
//!
//! ```
//! use actix_accountkit::emulator::{Emulator, EmulatorApp};
//!
//! let emu = Emulator::builder()
//!     .app(EmulatorApp::new("1234512345123451", "app-secret").require_appsecret_proof(true))
//!     .seed_accounts(3)
//!     .build()?;
//! assert!(emu.base_url().starts_with("http://127.0.0.1:"));
//! // POST {base_url}/_emulator/login {"phone":"+15551234567"} → {"code","access_token","account_id"}
//! // GET  {base_url}/v1.3/me?access_token=…&appsecret_proof=… → the /me body
//! emu.stop();    // port closed, state kept
//! emu.restart()?; // same port, same accounts and tokens
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The model
//!
//! * **Apps** ([`EmulatorApp`]): an id, an Account Kit app secret, an optional
//!   client token and the "Require App Secret" switch. The first app is the
//!   default app (for [`EmulatorBuilder::seed_accounts`] and for logins that
//!   name no app). With no app configured, one app with [`DEFAULT_APP_ID`] and
//!   [`DEFAULT_APP_SECRET`] is used (no client token, no proof required).
//! * **Accounts** are app-scoped: the same phone number in two apps is two
//!   accounts. Ids are random 16-digit decimal strings. The listing is in
//!   creation order.
//! * **User access tokens** (`EMAW` + 180 alphanumerics) and **authorization
//!   codes** (`AQ` + 280 URL-safe characters) are minted by
//!   `POST /_emulator/login`; a code is exchanged once, within the code
//!   lifetime ([`DEFAULT_CODE_TTL`]), for another token.
//! * State survives [`Emulator::stop`] / [`Emulator::restart`]
//!   and lives until the handle is dropped.
//!
//! # The Graph API (`/{version}/…`, version `v<major>.<minor>`)
//!
//! Parameters may come from the query string, an urlencoded body or a
//! multipart body (`curl -F access_token=… -F appsecret_proof=… …/v1.3/me`);
//! the first occurrence wins, the query string first. Trailing slashes are
//! accepted.
//!
//! | call | answer |
//! |---|---|
//! | `GET\|POST /{v}/me` | `{"id",…,"phone":{…}}` / `{"email":{"address":"a\u0040b.c"},"id"}`, then `"application":{"id"}` from v1.2 on |
//! | `GET\|POST /{v}/access_token?grant_type=authorization_code&code=…&access_token=AA\|id\|secret-or-client-token` | `{"id","access_token","token_refresh_interval_sec":2592000}` |
//! | `POST /{v}/logout` | `{"success":true}`; the token is dead |
//! | `POST /{v}/{account_id}/invalidate_all_tokens` (app token) | `{"success":true}`; every token of the account is dead |
//! | `DELETE /{v}/{account_id}` (app token) | `{"success":true}`; account gone, tokens dead |
//! | `GET /{v}/{app_id}/accounts?limit=N[&after\|before=…]` (app token) | Graph cursor envelope, `limit` 1–1000, default [`DEFAULT_PAGE_LIMIT`] |
//!
//! Every reply carries `Content-Type: application/json; charset=UTF-8`, an
//! `x-fb-trace-id` (equal to the body's `fbtrace_id` on errors) and
//! `Cache-Control` (`private, no-cache, no-store, must-revalidate` on success,
//! `no-store` on errors); errors add `WWW-Authenticate: OAuth "Facebook
//! Platform" "invalid_token"|"invalid_request" "<message>"`.
//!
//! ## Recorded answers (reproduced byte for byte, except the trace id)
//!
//! * unknown user token: 400, code 190, `OAuthException`, "Invalid OAuth access token.";
//! * unknown code, or a code of another app: 400, code 1, "Invalid verification code";
//! * `AA|id|secret` with an unknown id or a wrong secret/client token
//!   (anywhere): 500, code 2, `EMApiException`, `is_transient: true`,
//!   "Service temporarily unavailable";
//! * the user token is checked before the `appsecret_proof`.
//!
//! ## Modelled on Graph API conventions (never recorded)
//!
//! * code used twice: 400, code 1, "This authorization code has been used";
//!   expired: 400, code 1, "This authorization code has expired";
//! * missing proof (when the token's app requires one): 400, code 100,
//!   `GraphMethodException`, "API calls from the server require an
//!   appsecret_proof argument."; wrong proof: 400, code 100,
//!   `GraphMethodException`, "Invalid appsecret_proof provided in the API
//!   argument" (checked against the secret of the token's app; a proof sent
//!   to an app that does not require one is ignored);
//! * token after `logout`: 400, code 190, subcode 467; after
//!   `invalidate_all_tokens` or account deletion: 400, code 190, subcode 460;
//! * `/me` or `logout` without a user token (none, or an app token): 400,
//!   code 2500, "An active access token must be used to query information
//!   about the current user.";
//! * admin calls (invalidate, delete, accounts) without an
//!   `AA|id|app_secret` token, including the client-token form, and a code
//!   exchange without any app token: 400, code 15, "(#15) This method must be
//!   called with an app access_token.";
//! * an account id that is unknown or belongs to another app, an
//!   `/{app_id}/accounts` whose app id is not the token's, or a method an
//!   object does not support: 400, code 100, subcode 33,
//!   `GraphMethodException`, "Unsupported {get|post|delete} request. Object
//!   with ID '…' does not exist, cannot be loaded due to missing permissions,
//!   or does not support this operation. …";
//! * a bad `limit`, cursor, `grant_type` or missing `code`: 400, code 100;
//! * a malformed version or unknown path: 400, code 2500, "Unknown path
//!   components: /…".
//!
//! Listing cursors are opaque (URL-safe base64; `after` wins over `before`
//! when both are sent); `next` / `previous` are
//! absolute URLs on [`Emulator::base_url`] carrying `access_token`,
//! `limit` and `after` / `before`. `previous` is absent on the first page and
//! `next` on the last; an empty page is `{"data":[]}`. Each page costs
//! O(log n + limit).
//!
//! # Control endpoints (`/_emulator/*`, not counted, never faulted)
//!
//! * `POST /_emulator/login` `{"phone":"+15551234567"}` or
//!   `{"email":"a@example.com"}`, optional `"app_id"` (default: first app) →
//!   `{"code","access_token","account_id"}`. The same phone/email in the same
//!   app is the same account. Phones must be E.164 (`+`, 8–15 digits, an
//!   assigned ITU-T country calling code); the prefix is split off by longest
//!   match. Bad input → 400 `{"error":"…"}`.
//! * `GET /_emulator/stats` → `{"me":N,"access_token":N,"logout":N,
//!   "invalidate_all_tokens":N,"delete":N,"accounts":N}` (real-API calls
//!   received, faulted ones included); `DELETE` resets and returns them.
//! * `POST /_emulator/faults` `{"latency_ms":N,"status":S,"body":"…",
//!   "code2":"transient"|"misconfigured","calls":["me",…],"times":K,
//!   "after":M}`: let the next M real-API calls through (default 0), then
//!   the next K calls (default: all, until cleared) wait N ms and, when
//!   `status`, `body` and/or `code2` is given, are answered with it instead
//!   of being processed (a `body` without `status` is sent with 200; a
//!   `status` ≥ 400 without `body` gets a fitting Graph error: 429 → code 4
//!   "(#4) Application request limit reached", 5xx → Graph's transient
//!   code 2, others → code 1 "An unknown error has occurred."). `code2`
//!   chooses between the two meanings of code 2 (HTTP 500 unless `status`
//!   says otherwise): `"transient"`, Graph's outage answer (`OAuthException`,
//!   "An unexpected error has occurred. Please retry your request later.",
//!   modelled on Graph), or `"misconfigured"`, the recorded answer to a wrong
//!   app id or secret (`EMApiException`, "Service temporarily unavailable");
//!   both `is_transient: true`. `calls` limits the fault to those kinds of
//!   call (the stats counter names); other calls pass untouched and count
//!   neither M nor K. The body is sent verbatim (it need not be JSON) with
//!   the usual headers, including `Content-Type: application/json;
//!   charset=UTF-8`. Faults apply to every non-control request (unless
//!   `calls` says otherwise), unknown paths included; a call that gets a
//!   faulted status has no effect (a code is not consumed). `{}` (or
//!   `DELETE`) clears; the reply is the remaining fault (`GET` shows it).
//! * `POST /_emulator/apps/{app_id}/secret` `{"secret":"…"}`: resets an
//!   app's Account Kit app secret, as the dashboard's "Reset" did: app tokens
//!   and proofs made with the old one are refused from then on. Reply
//!   `{"app_id","secret":"reset"}` (the secret is never echoed); unknown app →
//!   404.
//!
//! Calls are counted by path shape (`/{any}/me` counts as `me` even with a
//! malformed version), before faults and validation. Dead tokens and used
//! codes are remembered until the handle is dropped (to answer 190 with a
//! subcode and "has been used"), so memory grows with every login.
//!
//! Requests are logged at `debug` level with method and path only: tokens,
//! secrets and proofs travel in query strings and bodies, which are never
//! logged.

mod control;
mod faults;
mod params;
mod phone;
mod proof;
mod reply;
mod routes;
mod state;
mod testing;

pub use testing::{Calls, ControlError, EmulatorControl, Fault, Login};

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use parking_lot::Mutex;

use state::{seed_login, Shared, State};

/// The app id used when the builder is given no app.
pub const DEFAULT_APP_ID: &str = "5432154321543210";
/// The Account Kit app secret used when the builder is given no app.
pub const DEFAULT_APP_SECRET: &str = "emulator-account-kit-app-secret";
/// Default lifetime of an authorization code: 10 minutes.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(600);
/// Page size of `/{app_id}/accounts` when no `limit` is given.
pub const DEFAULT_PAGE_LIMIT: usize = 25;
/// Largest accepted `limit` of `/{app_id}/accounts` (the smallest is 1).
pub const MAX_PAGE_LIMIT: usize = 1000;
/// `token_refresh_interval_sec` of every code exchange (30 days, as recorded).
pub const TOKEN_REFRESH_INTERVAL_SEC: u64 = 2_592_000;
/// Number of actix worker threads of the emulator.
const WORKERS: usize = 2;

/// An Account Kit app known to the emulator.
///
/// `Debug` redacts the secret and the client token.
#[derive(Clone, PartialEq, Eq)]
pub struct EmulatorApp {
    /// The (Facebook) app id, a decimal string.
    pub id: String,
    /// The Account Kit app secret (`AA|id|secret`, appsecret_proof key).
    pub secret: String,
    /// The client token (`AA|id|client_token`), accepted only for code
    /// exchanges. Default is `None`.
    pub client_token: Option<String>,
    /// The dashboard's "Require App Secret" switch: user-token calls must
    /// carry an `appsecret_proof`. Default is `false`.
    pub require_appsecret_proof: bool,
}

impl EmulatorApp {
    /// An app with this id and Account Kit app secret, no client token, and
    /// no proof required.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            client_token: None,
            require_appsecret_proof: false,
        }
    }

    /// Sets the client token. Default is none.
    #[must_use]
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(token.into());
        self
    }

    /// Requires an `appsecret_proof` on user-token calls. Default is `false`.
    #[must_use]
    pub fn require_appsecret_proof(mut self, require: bool) -> Self {
        self.require_appsecret_proof = require;
        self
    }
}

impl fmt::Debug for EmulatorApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorApp")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .field(
                "client_token",
                &self.client_token.as_ref().map(|_| "[redacted]"),
            )
            .field("require_appsecret_proof", &self.require_appsecret_proof)
            .finish()
    }
}

/// Configures an [`Emulator`]; [`build`](Self::build) starts it.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    apps: Vec<EmulatorApp>,
    seed_accounts: usize,
    addr: SocketAddr,
    code_ttl: Duration,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            apps: Vec::new(),
            seed_accounts: 0,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            code_ttl: DEFAULT_CODE_TTL,
        }
    }
}

impl EmulatorBuilder {
    /// Adds an app; repeatable. The first app is the default app. Default is
    /// one app with [`DEFAULT_APP_ID`] and [`DEFAULT_APP_SECRET`].
    #[must_use]
    pub fn app(mut self, app: EmulatorApp) -> Self {
        self.apps.push(app);
        self
    }

    /// Creates `n` accounts in the first app before serving: even indexes
    /// get phones `+1555NNNNNNN`, odd ones emails `userN@example.com`
    /// (deterministic, all distinct). Default is 0.
    #[must_use]
    pub fn seed_accounts(mut self, n: usize) -> Self {
        self.seed_accounts = n;
        self
    }

    /// The address to listen on. Default is `127.0.0.1:0` (a free port).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Lifetime of authorization codes. Default is [`DEFAULT_CODE_TTL`]
    /// (10 minutes).
    #[must_use]
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// Binds the socket and serves on a background thread with its own actix
    /// `System` (so it works from `#[tokio::test]`, `#[actix_web::test]` or a
    /// plain `main`). Returns once the socket is listening: connections made
    /// after this returns are queued and answered.
    ///
    /// # Errors
    ///
    /// The bind error, or `InvalidInput` for duplicate app ids or an empty
    /// app id or secret.
    pub fn build(self) -> io::Result<Emulator> {
        let mut apps = self.apps;
        if apps.is_empty() {
            apps.push(EmulatorApp::new(DEFAULT_APP_ID, DEFAULT_APP_SECRET));
        }
        for (i, app) in apps.iter().enumerate() {
            if app.id.is_empty() || app.secret.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "emulator app id and secret must not be empty",
                ));
            }
            if apps[..i].iter().any(|a| a.id == app.id) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("duplicate emulator app id {}", app.id),
                ));
            }
        }
        let mut state = State::new(apps, self.code_ttl);
        for i in 0..self.seed_accounts {
            state.login(0, seed_login(i));
        }
        let listener = TcpListener::bind(self.addr)?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(state, base_url.clone()));
        let running = serve(Arc::clone(&shared), listener)?;
        Ok(Emulator {
            shared,
            addr,
            base_url,
            running: Mutex::new(Some(running)),
        })
    }
}

struct Running {
    server: ServerHandle,
    thread: JoinHandle<()>,
}

fn serve(shared: Arc<Shared>, listener: TcpListener) -> io::Result<Running> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("accountkit-emulator".to_owned())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(routes::dispatch))
                })
                .workers(WORKERS)
                // Longer than clients' pool idle timeouts (the crate's own
                // is 55 s), like a production edge: with actix-web's 5 s
                // default, a client reusing a pooled connection at the
                // moment the server closes it gets a spurious error.
                .keep_alive(Duration::from_secs(75))
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener);
                let server = match server {
                    Ok(s) => s.run(),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(server.handle()));
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "accountkit emulator server failed");
                }
            });
        })?;
    match rx.recv() {
        Ok(Ok(server)) => Ok(Running { server, thread }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other(
                "the emulator thread exited before serving",
            ))
        }
    }
}

/// A running (or stopped) emulator; see the [module docs](self). Dropping it
/// stops the server and joins its thread; the state goes with it.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: String,
    running: Mutex<Option<Running>>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url)
            .field("running", &self.running.lock().is_some())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A builder with the defaults: no app (→ the default app), no accounts,
    /// `127.0.0.1:0`, code lifetime [`DEFAULT_CODE_TTL`].
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// `http://IP:PORT`, without a trailing slash; use it in place of
    /// `https://graph.accountkit.com`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server: the port is closed once this returns, in-flight
    /// requests are dropped. The state is kept for [`restart`](Self::restart).
    /// Stopping a stopped emulator does nothing.
    pub fn stop(&self) {
        let running = self.running.lock().take();
        if let Some(running) = running {
            // The stop command is sent when `stop` is called; the returned
            // future only waits for completion, which the join below covers.
            drop(running.server.stop(false));
            if running.thread.join().is_err() {
                tracing::error!("accountkit emulator thread panicked");
            }
        }
    }

    /// Serves again on the same address with the same state (accounts,
    /// tokens, codes, stats, faults), stopping first if running.
    ///
    /// # Errors
    ///
    /// The bind error (e.g. another process took the port meanwhile).
    pub fn restart(&self) -> io::Result<()> {
        let mut guard = self.running.lock();
        if let Some(running) = guard.take() {
            drop(running.server.stop(false));
            if running.thread.join().is_err() {
                tracing::error!("accountkit emulator thread panicked");
            }
        }
        let listener = TcpListener::bind(self.addr)?;
        *guard = Some(serve(Arc::clone(&self.shared), listener)?);
        Ok(())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
