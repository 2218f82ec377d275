//! Fail fast (issue 13, items 4 and 5): `AccountKit::check` at start-up over
//! real HTTP against the emulator, and `Config::from_env_with` (the parsing
//! behind `Config::from_env`, fed a map: no test mutates the process
//! environment).

use std::collections::HashMap;

use actix_accountkit::config::{Config, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
use actix_accountkit::error::{CheckError, ConfigError};
use actix_accountkit::AccountKit;
use secrecy::ExposeSecret;

use crate::support::closing_port::ClosingPort;
use crate::support::process::{demo, Finished, SERVING};
use crate::support::{self, APP_ID, APP_SECRET, CLIENT_TOKEN};

const WRONG_SECRET: &str = "facebook-app-secret-not-the-ak-one";

#[actix_rt::test]
async fn check_passes_with_the_right_secret() {
    let emu = support::emulator();
    let kit = support::kit(&emu);
    kit.check().await.expect("the right credentials pass");
    // One app-token call, no more.
    assert_eq!(support::all_calls(&emu).await, 1);
}

#[actix_rt::test]
async fn a_wrong_secret_names_the_app_id_and_never_the_secret() {
    let emu = support::emulator();
    let kit = AccountKit::new(
        Config::builder(APP_ID, WRONG_SECRET)
            .base_url(emu.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = kit.check().await.unwrap_err();
    assert!(err.is_credentials(), "{err:?}");
    assert!(!err.is_unreachable());
    match &err {
        CheckError::Credentials { app_id, .. } => assert_eq!(app_id, APP_ID),
        other => panic!("expected Credentials, got {other:?}"),
    }
    let shown = format!("{err} / {err:?} / {:?}", err.error());
    assert!(shown.contains(APP_ID), "{shown}");
    assert!(shown.contains("Account Kit app secret"), "{shown}");
    assert!(!shown.contains(WRONG_SECRET), "{shown}");
}

#[actix_rt::test]
async fn an_unknown_app_id_is_a_credentials_error_too() {
    let emu = support::emulator();
    let kit = AccountKit::new(
        Config::builder("999999999999999", APP_SECRET)
            .base_url(emu.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = kit.check().await.unwrap_err();
    assert!(err.is_credentials(), "{err:?}");
    assert!(err.to_string().contains("999999999999999"), "{err}");
    assert!(!format!("{err} {err:?}").contains(APP_SECRET));
}

#[actix_rt::test]
async fn a_stopped_emulator_is_unreachable_not_a_credentials_error() {
    let emu = support::emulator();
    let kit = support::kit(&emu);
    emu.stop();
    let err = kit.check().await.unwrap_err();
    assert!(
        matches!(err, CheckError::Unreachable { .. }),
        "expected Unreachable, got {err:?}"
    );
    assert!(err.is_unreachable() && !err.is_credentials());
    let shown = err.to_string();
    assert!(
        shown.contains(emu.base_url().trim_end_matches('/')),
        "{shown}"
    );
    assert!(!shown.contains(APP_SECRET), "{shown}");
}

#[actix_rt::test]
async fn a_failing_service_is_unreachable_and_does_not_stick() {
    let emu = support::emulator();
    let kit = support::kit(&emu);
    emu.stop();
    assert!(kit.check().await.unwrap_err().is_unreachable());
    // Back up: the next check passes (no verdict was kept from the outage).
    emu.restart().expect("restart");
    kit.check().await.expect("passes once the endpoint is back");
}

// ---- Config::from_env_with ----

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl FnMut(&str) -> Option<String> + 'a {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    move |name| map.get(name).map(|v| (*v).to_owned())
}

const BASE: [(&str, &str); 2] = [
    ("ACCOUNTKIT_APP_ID", APP_ID),
    ("ACCOUNTKIT_APP_SECRET", APP_SECRET),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = BASE.to_vec();
    // A later entry replaces an earlier one of the same name.
    all.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    all.extend_from_slice(extra);
    all
}

#[test]
fn from_env_reads_every_variable() {
    let vars = with(&[
        ("ACCOUNTKIT_CLIENT_TOKEN", CLIENT_TOKEN),
        ("ACCOUNTKIT_API_VERSION", "v1.1"),
        ("ACCOUNTKIT_BASE_URL", "http://127.0.0.1:8787/prefix"),
    ]);
    let c = Config::from_env_with(env(&vars)).unwrap();
    assert_eq!(c.app_id(), APP_ID);
    assert_eq!(c.app_secret().expose_secret(), APP_SECRET);
    assert_eq!(c.client_token().unwrap().expose_secret(), CLIENT_TOKEN);
    assert_eq!(c.api_version().as_str(), "v1.1");
    assert_eq!(c.base_url().as_str(), "http://127.0.0.1:8787/prefix/");
}

#[test]
fn from_env_defaults_and_empty_means_unset() {
    let vars = with(&[
        ("ACCOUNTKIT_CLIENT_TOKEN", ""),
        ("ACCOUNTKIT_API_VERSION", ""),
        ("ACCOUNTKIT_BASE_URL", ""),
        ("ACCOUNTKIT_EMULATOR_HOST", ""),
    ]);
    let c = Config::from_env_with(env(&vars)).unwrap();
    assert!(c.client_token().is_none());
    assert_eq!(c.api_version().as_str(), DEFAULT_API_VERSION);
    assert_eq!(
        c.base_url().as_str().trim_end_matches('/'),
        DEFAULT_BASE_URL
    );
}

#[test]
fn from_env_names_each_missing_variable() {
    for (missing, vars) in [
        (
            "ACCOUNTKIT_APP_ID",
            vec![("ACCOUNTKIT_APP_SECRET", APP_SECRET)],
        ),
        ("ACCOUNTKIT_APP_SECRET", vec![("ACCOUNTKIT_APP_ID", APP_ID)]),
        (
            "ACCOUNTKIT_APP_SECRET",
            vec![("ACCOUNTKIT_APP_ID", APP_ID), ("ACCOUNTKIT_APP_SECRET", "")],
        ),
    ] {
        let err = Config::from_env_with(env(&vars)).unwrap_err();
        assert_eq!(err, ConfigError::MissingEnvVar { variable: missing });
        assert!(err.to_string().contains(missing), "{err}");
    }
}

#[test]
fn from_env_names_the_variable_of_each_bad_value() {
    let cases: [(&str, &str); 12] = [
        ("ACCOUNTKIT_APP_ID", "not-a-number"),
        ("ACCOUNTKIT_APP_SECRET", "secret with spaces"),
        ("ACCOUNTKIT_APP_SECRET", "sécret-non-ascii"),
        ("ACCOUNTKIT_CLIENT_TOKEN", "token\twith-tab"),
        ("ACCOUNTKIT_API_VERSION", "1.3"),
        ("ACCOUNTKIT_BASE_URL", "graph.accountkit.com"),
        ("ACCOUNTKIT_BASE_URL", "ftp://127.0.0.1:8787"),
        ("ACCOUNTKIT_BASE_URL", "http://127.0.0.1:8787/?q=1"),
        ("ACCOUNTKIT_EMULATOR_HOST", "http://127.0.0.1:8787"),
        ("ACCOUNTKIT_EMULATOR_HOST", "127.0.0.1"),
        ("ACCOUNTKIT_EMULATOR_HOST", "127.0.0.1:99999"),
        ("ACCOUNTKIT_EMULATOR_HOST", "127.0.0.1:8787/path"),
    ];
    for (variable, value) in cases {
        let vars = with(&[(variable, value)]);
        let err = Config::from_env_with(env(&vars)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidEnvVar { variable: v, .. } if *v == variable),
            "{variable}={value:?}: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(variable), "{shown}");
        if variable == "ACCOUNTKIT_APP_SECRET" || variable == "ACCOUNTKIT_CLIENT_TOKEN" {
            assert!(!shown.contains(value), "secret value shown: {shown}");
        }
    }
    // Even a valid secret never shows in another variable's error.
    let vars = with(&[("ACCOUNTKIT_API_VERSION", "bad")]);
    let err = Config::from_env_with(env(&vars)).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(APP_SECRET));
}

#[test]
fn emulator_host_routes_every_call_to_it() {
    let vars = with(&[("ACCOUNTKIT_EMULATOR_HOST", "127.0.0.1:8787")]);
    let c = Config::from_env_with(env(&vars)).unwrap();
    assert_eq!(c.base_url().as_str(), "http://127.0.0.1:8787/");
    let vars = with(&[("ACCOUNTKIT_EMULATOR_HOST", "localhost:9099")]);
    let c = Config::from_env_with(env(&vars)).unwrap();
    assert_eq!(c.base_url().as_str(), "http://localhost:9099/");
    let vars = with(&[("ACCOUNTKIT_EMULATOR_HOST", "[::1]:8787")]);
    let c = Config::from_env_with(env(&vars)).unwrap();
    assert_eq!(c.base_url().as_str(), "http://[::1]:8787/");
}

#[test]
fn emulator_host_and_base_url_together_are_refused_naming_both() {
    let vars = with(&[
        ("ACCOUNTKIT_EMULATOR_HOST", "127.0.0.1:8787"),
        ("ACCOUNTKIT_BASE_URL", "http://127.0.0.1:9000"),
    ]);
    let err = Config::from_env_with(env(&vars)).unwrap_err();
    assert!(
        matches!(err, ConfigError::ConflictingEnvVars { .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("ACCOUNTKIT_EMULATOR_HOST"), "{shown}");
    assert!(shown.contains("ACCOUNTKIT_BASE_URL"), "{shown}");
}

/// `ACCOUNTKIT_EMULATOR_HOST` over real HTTP: the config it gives reaches
/// the emulator, and `check` passes there.
#[actix_rt::test]
async fn emulator_host_reaches_the_emulator_over_http() {
    let emu = support::emulator();
    let host = emu.addr().to_string();
    let vars: Vec<(&str, &str)> = vec![
        ("ACCOUNTKIT_APP_ID", APP_ID),
        ("ACCOUNTKIT_APP_SECRET", APP_SECRET),
        ("ACCOUNTKIT_EMULATOR_HOST", &host),
    ];
    let config = Config::from_env_with(env(&vars)).unwrap();
    let kit = AccountKit::new(config).unwrap();
    kit.check().await.expect("reaches the emulator");
    assert_eq!(support::all_calls(&emu).await, 1);
}

// ---- The demo at start ----
//
// The demo example run as a child process, configured by the environment
// (nothing else of the test's environment reaches it), killed at the end
// even when the test fails.

/// Runs the demo, which must exit without serving; what it printed, which
/// must not hold the app secret it was given.
fn demo_exits(vars: &[(&str, &str)]) -> Finished {
    let mut demo = demo(vars);
    let serving = demo.line_starting_with(SERVING);
    let out = demo.end();
    let shown = out.output();
    assert_eq!(serving, None, "the demo started serving:\n{shown}");
    if let Some((_, secret)) = vars.iter().find(|(k, _)| *k == "ACCOUNTKIT_APP_SECRET") {
        assert!(!shown.contains(secret), "the secret was printed: {shown}");
    }
    out
}

#[test]
fn demo_with_a_wrong_secret_exits_non_zero_naming_the_app_id() {
    let emu = support::emulator();
    let host = emu.addr().to_string();
    let out = demo_exits(&[
        ("ACCOUNTKIT_EMULATOR_HOST", &host),
        ("ACCOUNTKIT_APP_ID", APP_ID),
        ("ACCOUNTKIT_APP_SECRET", WRONG_SECRET),
    ]);
    let shown = out.output();
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(out.stderr.contains(APP_ID), "{shown}");
    assert!(out.stderr.contains("Account Kit app secret"), "{shown}");
}

#[actix_rt::test]
async fn demo_with_an_unreachable_endpoint_warns_and_serves() {
    let closing = ClosingPort::start();
    let host = closing.addr().to_string();
    let mut demo = demo(&[
        ("ACCOUNTKIT_EMULATOR_HOST", &host),
        ("ACCOUNTKIT_APP_ID", APP_ID),
        ("ACCOUNTKIT_APP_SECRET", APP_SECRET),
    ]);
    let Some(serving) = demo.line_starting_with(SERVING) else {
        panic!("the demo did not start:\n{}", demo.wait().output());
    };
    // The check was made, and failed on the unreachable endpoint.
    assert!(closing.accepted() >= 1);
    let logged = demo.stdout_so_far().to_owned();
    // Serving: public routes answer, protected ones answer 503.
    let index = support::get_with(&format!("{serving}/"), None).await;
    assert_eq!(index.status(), 200);
    let me = support::get_with(&format!("{serving}/me"), Some("EMAWunreachable0123")).await;
    assert_eq!(me.status(), 503);
    let out = demo.kill();
    let shown = out.output();
    assert!(logged.contains("WARN"), "{shown}");
    assert!(logged.contains("cannot be reached"), "{shown}");
    assert!(
        logged.contains(&host),
        "the warning names the endpoint: {shown}"
    );
    assert!(logged.contains("starting anyway"), "{shown}");
    assert!(
        !shown.contains(APP_SECRET),
        "the secret was printed: {shown}"
    );
}

/// The default endpoint, graph.accountkit.com, reached through a proxy on
/// loopback that closes every connection (hermetic: no test goes to the
/// internet): the real service was shut down, which is definite.
#[test]
fn demo_on_the_default_endpoint_says_the_service_was_shut_down() {
    let proxy = ClosingPort::start();
    let proxy_url = format!("http://{}", proxy.addr());
    let out = demo_exits(&[
        ("ACCOUNTKIT_APP_ID", APP_ID),
        ("ACCOUNTKIT_APP_SECRET", APP_SECRET),
        ("HTTPS_PROXY", &proxy_url),
    ]);
    let shown = out.output();
    assert!(
        proxy.accepted() >= 1,
        "the check did not go through the proxy"
    );
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for needle in [
        "graph.accountkit.com",
        "shut down",
        "emulator",
        "ACCOUNTKIT_EMULATOR_HOST",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {shown}");
    }
}

#[test]
fn demo_with_a_bad_variable_exits_2_naming_it() {
    let out = demo_exits(&[
        ("ACCOUNTKIT_EMULATOR_HOST", "http://127.0.0.1:8787"),
        ("ACCOUNTKIT_APP_ID", APP_ID),
        ("ACCOUNTKIT_APP_SECRET", APP_SECRET),
    ]);
    let shown = out.output();
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(out.stderr.contains("ACCOUNTKIT_EMULATOR_HOST"), "{shown}");
}
