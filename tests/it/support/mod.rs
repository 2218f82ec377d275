//! Shared fixtures: the emulator, raw HTTP calls to its control endpoints,
//! and an app under test served over real HTTP on 127.0.0.1, port 0.
#![allow(dead_code)]

pub mod closing_port;
pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use actix_accountkit::config::{Config, RetryPolicy};
use actix_accountkit::emulator::{Emulator, EmulatorApp};
use actix_accountkit::AccountKit;
use serde_json::{json, Value};

#[cfg(feature = "redis")]
#[macro_use]
pub mod redis;

pub const APP_ID: &str = "390265671523337";
pub const APP_SECRET: &str = "9bdc9ae47c4211b9919a036c1e1bc477";
pub const OTHER_APP_ID: &str = "111122223333444";
pub const OTHER_APP_SECRET: &str = "other-app-secret-0123456789abcdef";
pub const CLIENT_TOKEN: &str = "client-token-abcdef0123456789";

/// One app requiring appsecret_proof, and a second app.
pub fn emulator() -> Emulator {
    emulator_with(true)
}

pub fn emulator_with(require_proof: bool) -> Emulator {
    Emulator::builder()
        .app(
            EmulatorApp::new(APP_ID, APP_SECRET)
                .client_token(CLIENT_TOKEN)
                .require_appsecret_proof(require_proof),
        )
        .app(
            EmulatorApp::new(OTHER_APP_ID, OTHER_APP_SECRET).require_appsecret_proof(require_proof),
        )
        .build()
        .expect("emulator starts")
}

pub fn config(emu: &Emulator) -> actix_accountkit::config::ConfigBuilder {
    Config::builder(APP_ID, APP_SECRET)
        .client_token(CLIENT_TOKEN)
        .base_url(emu.base_url())
        .timeout(Duration::from_millis(800))
        .retry_policy(RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        })
}

pub fn kit(emu: &Emulator) -> AccountKit {
    AccountKit::new(config(emu).build().expect("config")).expect("kit")
}

thread_local! {
    /// One client per test thread (each actix test runs its own runtime on
    /// its own thread): building a client per request costs milliseconds.
    // Idle connections are dropped well before actix-web's 5 s keep-alive
    // closes them: reusing one the server is closing that instant fails.
    static HTTP: reqwest::Client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest");
}

pub fn http() -> reqwest::Client {
    HTTP.with(Clone::clone)
}

/// An `appsecret_proof`, computed here (not by the crate's client).
pub fn proof(secret: &str, token: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Logs `token` out directly at Account Kit (raw HTTP, as another service
/// or a script would: not through this crate's admin client).
pub async fn logout_at_account_kit(emu: &Emulator, token: &str) {
    let res = http()
        .post(format!("{}/v1.3/logout", emu.base_url()))
        .query(&[
            ("access_token", token),
            ("appsecret_proof", &proof(APP_SECRET, token)),
        ])
        .send()
        .await
        .expect("logout request");
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

/// What a device login yields: (code, access_token, account_id).
pub struct Login {
    pub code: String,
    pub token: String,
    pub account_id: String,
}

pub async fn login_in(emu: &Emulator, body: Value) -> Login {
    let v: Value = http()
        .post(format!("{}/_emulator/login", emu.base_url()))
        .json(&body)
        .send()
        .await
        .expect("login call")
        .error_for_status()
        .expect("login ok")
        .json()
        .await
        .expect("login json");
    Login {
        code: v["code"].as_str().expect("code").to_owned(),
        token: v["access_token"].as_str().expect("token").to_owned(),
        account_id: v["account_id"].as_str().expect("account id").to_owned(),
    }
}

pub async fn login(emu: &Emulator, phone: &str) -> Login {
    login_in(emu, json!({ "phone": phone })).await
}

pub async fn login_other_app(emu: &Emulator, phone: &str) -> Login {
    login_in(emu, json!({ "phone": phone, "app_id": OTHER_APP_ID })).await
}

/// The emulator's `/_emulator/stats`: real-API calls received, by kind.
pub async fn stats(emu: &Emulator) -> Value {
    http()
        .get(format!("{}/_emulator/stats", emu.base_url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

/// Real-API calls the emulator received of one kind.
pub async fn calls(emu: &Emulator, kind: &str) -> u64 {
    let v = stats(emu).await;
    v[kind]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {kind} in {v}"))
}

/// Every real-API call the emulator received.
pub async fn all_calls(emu: &Emulator) -> u64 {
    let v = stats(emu).await;
    v.as_object()
        .expect("stats object")
        .values()
        .map(|n| n.as_u64().expect("counter"))
        .sum()
}

pub async fn fault(emu: &Emulator, spec: Value) {
    let status = http()
        .post(format!("{}/_emulator/faults", emu.base_url()))
        .json(&spec)
        .send()
        .await
        .expect("faults")
        .status();
    assert!(status.is_success(), "fault injection refused: {status}");
}

/// Serves `app` over real HTTP on 127.0.0.1:0 (one worker) and returns its
/// base URL; the socket is bound before this returns.
#[macro_export]
macro_rules! serve {
    ($factory:expr) => {{
        let server = actix_web::HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind");
        let addr: std::net::SocketAddr = server.addrs()[0];
        let running = server.run();
        let handle = running.handle();
        actix_web::rt::spawn(running);
        $crate::support::Served { addr, handle }
    }};
}

pub struct Served {
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

pub async fn get_with(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = http().get(url);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.send().await.expect("request")
}

/// A protected handler: the verified account's id.
pub async fn me(account: actix_accountkit::VerifiedAccount) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().body(account.id().to_owned())
}

/// A protected handler: logs the request's token out through the admin client.
pub async fn logout(
    admin: actix_web::web::Data<actix_accountkit::admin::AdminClient>,
    account: actix_accountkit::VerifiedAccount,
) -> actix_web::HttpResponse {
    match admin.logout(account.token()).await {
        Ok(()) => actix_web::HttpResponse::NoContent().finish(),
        Err(e) => actix_web::HttpResponse::BadGateway().body(e.to_string()),
    }
}

/// The app under test: `/me` and `/logout` behind the kit's middleware, the
/// admin client in app data, served over real HTTP.
pub fn protected_app(kit: &AccountKit) -> Served {
    let kit = kit.clone();
    serve!(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(kit.admin().clone()))
            .wrap(kit.auth().clone())
            .route("/me", actix_web::web::get().to(me))
            .route("/logout", actix_web::web::post().to(logout))
    })
}

/// Runs `test` in a process of its own: this test binary again, asked for
/// this one test (`name`, its path in the binary), with an environment
/// variable that tells the child to run the body. For tests that install a
/// global `tracing` subscriber and read everything logged: in the shared
/// test binary, other tests' threads would log into it.
pub fn in_own_process(name: &str, test: impl FnOnce()) {
    const CHILD: &str = "ACCOUNTKIT_TEST_IN_OWN_PROCESS";
    if std::env::var(CHILD).is_ok_and(|v| v == name) {
        test();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .expect("run the test in its own process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its own process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run in its own process:\n{stdout}"
    );
}

/// Everything logged in this process from the moment
/// [`capture`](Self::capture) is called: one global `tracing` subscriber,
/// so use it only in a test run [`in_own_process`].
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// Installs the subscriber (this crate's events at `debug` and above).
    pub fn capture() -> Self {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("actix_accountkit=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this process");
        logs
    }

    /// The lines logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
