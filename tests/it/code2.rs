//! The two meanings of Graph error code 2: Graph's "service temporarily
//! unavailable" (an outage) and Account Kit's answer to a misconfigured app.
//! A transient one is absorbed by a retry (reads, and writes whose answer
//! shows they were not carried out); one that persists is an outage (503
//! and a warning) unless the app-token self-check says our credentials are
//! refused (503 and an error naming the app secret); an export goes through
//! them. The emulator's own answers are checked over raw HTTP in
//! `emulator::faults_give_either_meaning_of_code_2`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::Duration;

use crate::support::*;
use actix_accountkit::admin::AdminClient;
use actix_accountkit::client::GraphClient;
use actix_accountkit::config::{Config, RetryPolicy};
use actix_accountkit::emulator::{Emulator, EmulatorApp};
use actix_accountkit::export::{ExportOptions, HEADER_LINE};
use actix_accountkit::AccountKit;
use serde_json::{json, Value};

/// The fixtures' config (one retry, backoffs of 10–20 ms) with a timeout
/// that a loaded machine cannot reach: these tests count calls, and a
/// timeout is never retried.
fn patient(emu: &Emulator) -> actix_accountkit::config::ConfigBuilder {
    config(emu).timeout(Duration::from_secs(10))
}

#[actix_web::test]
async fn one_transient_code_2_on_me_is_absorbed_by_a_retry() {
    let emu = emulator();
    let kit = AccountKit::new(patient(&emu).build().unwrap()).unwrap();
    let app = protected_app(&kit);
    let user = login(&emu, "+15552220001").await;

    fault(&emu, json!({"code2": "transient", "times": 1})).await;
    let res = get_with(&app.url("/me"), Some(&user.token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), user.account_id);
    assert_eq!(
        calls(&emu, "me").await,
        2,
        "the first attempt and its retry"
    );
    assert_eq!(calls(&emu, "accounts").await, 0, "no self-check was needed");

    // The same on an accounts page.
    fault(&emu, json!({"code2": "transient", "times": 1})).await;
    let page = kit.client().accounts_page(10, None).await.unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(calls(&emu, "accounts").await, 2);
}

/// Writes are idempotent in effect but not in their answer; a code 2 shows
/// the call was not carried out, so they and the code exchange are sent
/// again after one.
#[actix_web::test]
async fn writes_and_the_exchange_are_sent_again_after_a_code_2() {
    let emu = emulator();
    let client = GraphClient::new(patient(&emu).build().unwrap()).unwrap();
    let once = |call: &str| json!({"code2": "transient", "calls": [call], "times": 1});
    let user = login(&emu, "+15552220002").await;

    fault(&emu, once("access_token")).await;
    let exchanged = client.exchange_code(&user.code).await.expect("exchanged");
    assert_eq!(exchanged.id, user.account_id);
    assert_eq!(calls(&emu, "access_token").await, 2);

    fault(&emu, once("logout")).await;
    client.logout(&user.token).await.expect("logged out");
    assert_eq!(calls(&emu, "logout").await, 2);
    assert!(client.me(&user.token).await.unwrap_err().is_invalid_token());

    fault(&emu, once("invalidate_all_tokens")).await;
    client
        .invalidate_all_tokens(&user.account_id)
        .await
        .expect("invalidated");
    assert_eq!(calls(&emu, "invalidate_all_tokens").await, 2);

    fault(&emu, once("delete")).await;
    client
        .delete_account(&user.account_id)
        .await
        .expect("deleted");
    assert_eq!(calls(&emu, "delete").await, 2);

    // Bounded: a code 2 that persists is reported after one retry.
    fault(&emu, json!({"code2": "misconfigured", "calls": ["logout"]})).await;
    let other = login(&emu, "+15552220003").await;
    let e = client.logout(&other.token).await.unwrap_err();
    assert!(e.is_app_misconfigured(), "{e}");
    assert_eq!(calls(&emu, "logout").await, 4);
}

#[test]
fn a_persistent_transient_code_2_is_an_outage_not_a_misconfiguration() {
    in_own_process(
        "code2::a_persistent_transient_code_2_is_an_outage_not_a_misconfiguration",
        || actix_web::rt::System::new().block_on(outage()),
    );
}

async fn outage() {
    let logs = Logs::capture();
    let emu = emulator();
    let kit = AccountKit::new(patient(&emu).build().unwrap()).unwrap();
    let app = protected_app(&kit);
    let tokens = [
        login(&emu, "+15552221001").await.token,
        login(&emu, "+15552221002").await.token,
        login(&emu, "+15552221003").await.token,
        login(&emu, "+15552221004").await.token,
    ];
    let url = app.url("/me");
    let get = |i: usize| get_with(&url, Some(&tokens[i]));
    let unavailable = |res: reqwest::Response| {
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "5");
    };
    let counts = || async { (calls(&emu, "me").await, calls(&emu, "accounts").await) };

    // /me answers code 2 on every attempt; the self-check confirms our
    // credentials: an outage.
    fault(&emu, json!({"code2": "transient", "calls": ["me"]})).await;
    unavailable(get(0).await);
    assert_eq!(counts().await, (2, 1), "/me and its retry, one self-check");

    // Even with Account Kit's misconfiguration body: the self-check decides,
    // not the body. (A "good" verdict only vouches for earlier refusals: a
    // new check.)
    fault(&emu, json!({"code2": "misconfigured", "calls": ["me"]})).await;
    unavailable(get(1).await);
    assert_eq!(counts().await, (4, 2));

    // Every call answers code 2, the self-check included; so does the
    // credential-free probe: the service is down.
    fault(&emu, json!({"code2": "transient"})).await;
    unavailable(get(2).await);
    assert_eq!(counts().await, (4 + 2 + 2, 2 + 2), "/me, self-check, probe");
    // That verdict is reused: no self-check per request during an outage.
    unavailable(get(3).await);
    assert_eq!(counts().await, (10, 4));

    // Nothing was cached: back as soon as Account Kit is.
    fault(&emu, json!({})).await;
    for i in 0..4 {
        assert_eq!(get(i).await.status(), 200);
    }

    let text = logs.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("Account Kit unavailable"))
        .count();
    assert_eq!(warnings, 4, "{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains("Account Kit unavailable"))
            .all(|l| l.contains("code 2")),
        "{text}"
    );
    assert!(!text.contains(" ERROR "), "{text}");
    assert!(!text.contains("refused app id"), "{text}");
}

#[test]
fn a_misconfiguration_code_2_with_refused_credentials_names_the_app_secret() {
    in_own_process(
        "code2::a_misconfiguration_code_2_with_refused_credentials_names_the_app_secret",
        || actix_web::rt::System::new().block_on(misconfigured()),
    );
}

async fn misconfigured() {
    let logs = Logs::capture();
    // No proof required, so that /me itself does not give the wrong secret
    // away: only the code 2 and the self-check do.
    let emu = emulator_with(false);
    let wrong = "the-facebook-app-secret-not-account-kits";
    let config = Config::builder(APP_ID, wrong)
        .base_url(emu.base_url())
        .timeout(Duration::from_secs(10))
        .retry_policy(config(&emu).build().unwrap().retry_policy().clone())
        .build()
        .unwrap();
    let kit = AccountKit::new(config).unwrap();
    let app = protected_app(&kit);
    let users = [
        login(&emu, "+15552222001").await,
        login(&emu, "+15552222002").await,
    ];
    let code2_on_me = json!({"code2": "misconfigured", "calls": ["me"], "times": 2});

    // /me: code 2 twice (the attempt and its retry). The self-check: our
    // app token refused (code 2, twice), while the service answers the
    // credential-free probe (code 190): our credentials are refused.
    fault(&emu, code2_on_me.clone()).await;
    let res = get_with(&app.url("/me"), Some(&users[0].token)).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        (calls(&emu, "me").await, calls(&emu, "accounts").await),
        (2 + 1, 2)
    );

    // The "bad" verdict is reused: no new self-check.
    fault(&emu, code2_on_me).await;
    let res = get_with(&app.url("/me"), Some(&users[1].token)).await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        (calls(&emu, "me").await, calls(&emu, "accounts").await),
        (5, 2)
    );
    assert_eq!(kit.cache().stats().negative_entries, 0, "nobody's fault");

    let text = logs.text();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 2, "{text}");
    for line in errors {
        assert!(
            line.contains(&format!("Account Kit refused app id {APP_ID}'s app secret")),
            "{line}"
        );
    }
    assert!(!text.contains("Account Kit unavailable"), "{text}");
    assert!(!text.contains(wrong), "the secret itself is never logged");
    for user in &users {
        assert!(!text.contains(&user.token));
    }
}

// ---------------------------------------------------------------------------
// The export.

const ACCOUNTS: usize = 2_000;
const LIMIT: u32 = 100;
const PAGES: u64 = (ACCOUNTS as u64).div_ceil(LIMIT as u64);

fn emulator_seeded() -> Emulator {
    Emulator::builder()
        .app(EmulatorApp::new(APP_ID, APP_SECRET))
        .seed_accounts(ACCOUNTS)
        .build()
        .expect("emulator starts")
}

fn admin(emu: &Emulator, max_retries: u32) -> AdminClient {
    let config = Config::builder(APP_ID, APP_SECRET)
        .base_url(emu.base_url())
        .timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        })
        .build()
        .expect("config");
    AdminClient::without_cache(GraphClient::new(config).expect("client"))
}

/// An export of every account, and a check that it holds each exactly once.
async fn export_all(admin: &AdminClient, mut on_page: impl FnMut(u64)) -> Vec<u8> {
    let mut out = Vec::new();
    let done = admin
        .export_csv_with_progress(&mut out, &ExportOptions::new().limit(LIMIT), |p| {
            on_page(p.pages)
        })
        .await
        .expect("the export completes");
    assert_eq!((done.pages, done.accounts), (PAGES, ACCOUNTS as u64));
    let text = std::str::from_utf8(&out).expect("UTF-8");
    assert!(text.starts_with(&format!("{HEADER_LINE}\n")));
    let mut reader = csv::ReaderBuilder::new().from_reader(out.as_slice());
    let ids: Vec<String> = reader
        .records()
        .map(|r| r.expect("a CSV record")[0].to_owned())
        .collect();
    assert_eq!(ids.len(), ACCOUNTS);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ACCOUNTS,
        "an id twice"
    );
    out
}

#[tokio::test]
async fn an_export_through_two_transient_code_2s_is_complete() {
    let emu = emulator_seeded();
    let reference = export_all(&admin(&emu, 1), |_| {}).await;
    assert_eq!(calls(&emu, "accounts").await, PAGES);

    // Two in a row on the fourth page (two retries of one page).
    fault(
        &emu,
        json!({"code2": "transient", "calls": ["accounts"], "after": 3, "times": 2}),
    )
    .await;
    let out = export_all(&admin(&emu, 2), |_| {}).await;
    assert!(
        out == reference,
        "the file differs from a fault-free export"
    );
    assert_eq!(calls(&emu, "accounts").await, 2 * PAGES + 2);

    // One on the third page and one on the twelfth, with one retry per
    // page: the second fault is set between pages 11 and 12.
    fault(&emu, json!({"code2": "transient", "after": 2, "times": 1})).await;
    let addr = emu.addr();
    let out = export_all(&admin(&emu, 1), |pages| {
        if pages == 11 {
            fault_between_pages(addr, &json!({"code2": "transient", "times": 1}));
        }
    })
    .await;
    assert!(
        out == reference,
        "the file differs from a fault-free export"
    );
    assert_eq!(calls(&emu, "accounts").await, 3 * PAGES + 2 + 2);
}

/// Sets a fault from inside the export's progress callback, which cannot
/// await: one blocking raw HTTP request (the emulator serves on a thread of
/// its own). The export asks for the next page only after the callback.
fn fault_between_pages(addr: std::net::SocketAddr, spec: &Value) {
    let body = spec.to_string();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the emulator");
    write!(
        stream,
        "POST /_emulator/faults HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the fault");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
