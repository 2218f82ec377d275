//! The emulator helpers for users' tests (`Emulator::control`,
//! `EmulatorControl`): logins, faults, call counters and secret resets,
//! over real HTTP, and what they answer when the emulator refuses a call,
//! cannot be reached, or is not an emulator. (By URL against the
//! `accountkit-emulator` command: `cli`.)

use std::time::Duration;

use actix_accountkit::config::{Config, RetryPolicy};
use actix_accountkit::emulator::{Calls, ControlError, EmulatorControl, Fault};
use actix_accountkit::AccountKit;
use actix_web::{web, App, HttpResponse};

use crate::support::closing_port::ClosingPort;
use crate::support::{self, APP_ID, OTHER_APP_ID, OTHER_APP_SECRET};

/// A kit on `emu` whose client never retries, so that every call it makes
/// is one call the emulator counts.
fn kit_without_retries(emu: &actix_accountkit::emulator::Emulator) -> AccountKit {
    let config = support::config(emu)
        .retry_policy(RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        })
        .build()
        .expect("config");
    AccountKit::new(config).expect("kit")
}

/// A kit of the app `app_id` on `emu`, with the defaults.
fn kit_of(emu: &actix_accountkit::emulator::Emulator, app_id: &str, secret: &str) -> AccountKit {
    let config = Config::builder(app_id, secret)
        .base_url(emu.base_url())
        .build()
        .expect("config");
    AccountKit::new(config).expect("kit")
}

#[actix_rt::test]
async fn logins_by_phone_and_by_email_give_a_code_and_a_token_that_work() {
    let emu = support::emulator();
    let kit = support::kit(&emu);
    let control = emu.control();

    let login = control.login_phone("+15555550100").await.expect("login");
    let account = kit.client().me(&login.access_token).await.expect("/me");
    assert_eq!(account.id, login.account_id);
    let phone = account.phone.expect("a phone account");
    assert_eq!(phone.number, "+15555550100");
    // The same number again: the same account, another token.
    let again = control.login_phone("+15555550100").await.expect("login");
    assert_eq!(again.account_id, login.account_id);
    assert_ne!(again.access_token, login.access_token);

    let by_email = control.login_email("ada@example.com").await.expect("login");
    let exchanged = kit
        .admin()
        .exchange_code(&by_email.code)
        .await
        .expect("code");
    assert_eq!(exchanged.id, by_email.account_id);
    let account = kit
        .client()
        .me(exchanged.access_token.expose_secret())
        .await
        .expect("/me");
    assert_eq!(
        account.email.expect("an email account").address,
        "ada@example.com"
    );

    // Another app of the emulator: its own account, refused by this app.
    let other = control
        .app(OTHER_APP_ID)
        .login_phone("+15555550100")
        .await
        .expect("login in the other app");
    assert_ne!(other.account_id, login.account_id);
    let other_kit = kit_of(&emu, OTHER_APP_ID, OTHER_APP_SECRET);
    let account = other_kit.client().me(&other.access_token).await;
    assert_eq!(account.expect("/me in the other app").id, other.account_id);
    assert!(kit.client().me(&other.access_token).await.is_err());

    // Debug shows the account, never the code or the token.
    let shown = format!("{login:?}");
    assert!(shown.contains(&login.account_id), "{shown}");
    assert!(!shown.contains(&login.access_token) && !shown.contains(&login.code));
}

#[actix_rt::test]
async fn faults_apply_after_and_times_then_clear_and_calls_count_them() {
    let emu = support::emulator();
    let kit = kit_without_retries(&emu);
    let control = emu.control();
    let token = control
        .login_phone("+15555550101")
        .await
        .expect("login")
        .access_token;
    let me = || async { kit.client().me(&token).await };

    // One call through, then two faulted, then the fault is spent.
    let fault = Fault::new().status(503).body("<html>down</html>");
    control
        .set_fault(&fault.clone().after(1).times(2))
        .await
        .expect("set");
    assert!(me().await.is_ok());
    assert!(me().await.unwrap_err().is_unavailable());
    assert!(me().await.unwrap_err().is_unavailable());
    assert!(me().await.is_ok());

    // Until cleared; a status alone gets a fitting Graph error (429: code 4).
    control
        .set_fault(&Fault::new().status(429))
        .await
        .expect("set");
    let err = me().await.unwrap_err();
    assert!(
        err.is_rate_limited() && err.graph().is_some_and(|g| g.code == 4),
        "{err:?}"
    );
    assert!(me().await.is_err());
    control.clear_faults().await.expect("clear");
    assert!(me().await.is_ok());

    // Latency beyond the client's timeout (800 ms): a timeout.
    control
        .set_fault(&Fault::new().latency(Duration::from_secs(30)).times(1))
        .await
        .expect("set");
    assert!(me().await.unwrap_err().is_timeout());

    // Every real-API call counted, faulted ones included; control calls not.
    let calls = control.calls().await.expect("calls");
    assert_eq!(calls.me, 8, "{calls:?}");
    assert_eq!(calls.total(), 8, "{calls:?}");
    control.reset_calls().await.expect("reset");
    assert_eq!(control.calls().await.expect("calls"), Calls::default());
}

#[actix_rt::test]
async fn code2_faults_of_either_meaning_limited_to_some_calls() {
    let emu = support::emulator();
    let control = emu.control();
    let token = control
        .login_phone("+15555550102")
        .await
        .expect("login")
        .access_token;
    // Raw HTTP: the body as Account Kit / Graph gave it, not our client's view.
    let raw_me = || async {
        let res = support::http()
            .get(format!("{}/v1.3/me", emu.base_url()))
            .query(&[
                ("access_token", token.as_str()),
                (
                    "appsecret_proof",
                    &support::proof(support::APP_SECRET, &token),
                ),
            ])
            .send()
            .await
            .expect("me");
        let status = res.status().as_u16();
        (status, res.json::<serde_json::Value>().await.expect("json"))
    };
    for (fault, error_type) in [
        (Fault::new().code2_transient(), "OAuthException"),
        (Fault::new().code2_misconfigured(), "EMApiException"),
    ] {
        control
            .set_fault(&fault.calls(["me"]).times(1))
            .await
            .expect("set");
        let (status, body) = raw_me().await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], 2, "{body}");
        assert_eq!(body["error"]["is_transient"], true, "{body}");
        assert_eq!(body["error"]["type"], error_type, "{body}");
        let (status, body) = raw_me().await;
        assert_eq!(status, 200, "the fault was spent: {body}");
    }
    // Limited to `accounts`: `me` goes through.
    control
        .set_fault(&Fault::new().code2_transient().calls(["accounts"]))
        .await
        .expect("set");
    assert_eq!(raw_me().await.0, 200);
}

#[actix_rt::test]
async fn a_secret_reset_refuses_the_old_credentials() {
    let emu = support::emulator();
    let kit = support::kit(&emu);
    kit.check().await.expect("the configured secret passes");
    let new_secret = "rotated-account-kit-secret-0123";
    emu.control()
        .reset_app_secret(APP_ID, new_secret)
        .await
        .expect("reset");
    let err = kit.check().await.expect_err("the old secret is refused");
    assert!(err.is_credentials(), "{err:?}");
    let rotated = kit_of(&emu, APP_ID, new_secret);
    rotated.check().await.expect("the new secret passes");
    // The secret is never echoed, even in a refusal.
    let err = emu
        .control()
        .reset_app_secret("999999999999999", new_secret)
        .await
        .expect_err("an unknown app");
    assert!(
        matches!(err, ControlError::Refused { status: 404, .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(new_secret));
}

#[actix_rt::test]
async fn refusals_are_typed_and_carry_the_emulators_message() {
    let emu = support::emulator();
    let control = emu.control();
    let refused = |err: ControlError, expected: &str| match err {
        ControlError::Refused {
            status, message, ..
        } => {
            assert_eq!(status, 400, "{message}");
            assert!(message.contains(expected), "{expected}: {message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    refused(control.login_phone("5555550100").await.unwrap_err(), "+");
    refused(
        control.login_email("not-an-email").await.unwrap_err(),
        "name@example.com",
    );
    refused(
        control
            .app("999")
            .login_phone("+15555550100")
            .await
            .unwrap_err(),
        "unknown app_id",
    );
    refused(
        control
            .set_fault(&Fault::new().status(700))
            .await
            .unwrap_err(),
        "100",
    );
    // Nothing was counted: control calls are not real-API calls.
    assert_eq!(control.calls().await.expect("calls").total(), 0);
}

#[actix_rt::test]
async fn bad_urls_unreachable_emulators_and_other_servers_are_errors() {
    for url in [
        "127.0.0.1:8787",
        "not a url",
        "ftp://127.0.0.1:8787",
        "http://127.0.0.1:8787/?q=1",
        "http://user@127.0.0.1:8787",
    ] {
        let err = EmulatorControl::new(url).unwrap_err();
        assert!(
            matches!(err, ControlError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
    let trailing = EmulatorControl::new("http://127.0.0.1:8787/").expect("valid");
    assert_eq!(trailing.base_url(), "http://127.0.0.1:8787");

    let closing = ClosingPort::start();
    let control = EmulatorControl::new(&format!("http://{}", closing.addr())).expect("valid");
    let err = control.calls().await.unwrap_err();
    assert!(matches!(err, ControlError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&closing.addr().to_string()),
        "{err}"
    );

    // A server that is not an emulator answers 200 with something else.
    let other = serve!(
        || App::new().default_service(web::to(|| async { HttpResponse::Ok().body("hello") }))
    );
    let control = EmulatorControl::new(&other.url("")).expect("valid");
    let err = control.calls().await.unwrap_err();
    assert!(matches!(err, ControlError::Decode { .. }), "{err:?}");
    let err = control.login_phone("+15555550100").await.unwrap_err();
    assert!(matches!(err, ControlError::Decode { .. }), "{err:?}");
}

/// A control is tied to no runtime: one made in a test's first runtime
/// still works from a second one, after the first is gone (tests that share
/// one emulator across `#[tokio::test]`s do this).
#[test]
fn one_control_works_from_one_runtime_after_another() {
    let emu = support::emulator();
    let control = emu.control();
    for phone in ["+15555550102", "+15555550103"] {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let login = runtime.block_on(control.login_phone(phone));
        assert!(!login.expect("login").access_token.is_empty());
        let calls = runtime.block_on(control.calls()).expect("calls");
        assert_eq!(calls.total(), 0);
    }
}
