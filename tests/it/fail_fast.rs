//! Fail fast (issue 13, items 4 and 5): `AccountKit::check` at start-up over
//! real HTTP against the emulator, and `Config::from_env_with` (the parsing
//! behind `Config::from_env`, fed a map: no test mutates the process
//! environment).

use std::collections::HashMap;

use actix_accountkit::config::{Config, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
use actix_accountkit::error::{CheckError, ConfigError};
use actix_accountkit::AccountKit;
use secrecy::ExposeSecret;

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

/// The built demo example, next to this test binary (`target/<profile>/
/// examples/demo`). Cargo gives tests no path to examples, and building it
/// from inside a test would wait on cargo's own lock: these tests are
/// ignored by default, run them after building it:
///
/// ```text
/// cargo build --all-features --example demo
/// cargo test --all-features --test it fail_fast::demo -- --ignored
/// ```
fn demo_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let demo = profile_dir
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        demo.exists(),
        "{} not found: cargo build --all-features --example demo",
        demo.display()
    );
    demo
}

fn demo_command(emu_host: &str, secret: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(demo_binary());
    cmd.args(["--addr", "127.0.0.1:0", "--workers", "1"])
        .env_remove("ACCOUNTKIT_BASE_URL")
        .env_remove("ACCOUNTKIT_REDIS_URL")
        .env_remove("ACCOUNTKIT_CLIENT_TOKEN")
        .env_remove("ACCOUNTKIT_API_VERSION")
        .env("ACCOUNTKIT_EMULATOR_HOST", emu_host)
        .env("ACCOUNTKIT_APP_ID", APP_ID)
        .env("ACCOUNTKIT_APP_SECRET", secret)
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
#[ignore = "needs the demo example built: cargo build --all-features --example demo"]
fn demo_with_a_wrong_secret_exits_non_zero_naming_the_app_id() {
    let emu = support::emulator();
    let out = demo_command(&emu.addr().to_string(), WRONG_SECRET)
        .output()
        .expect("run the demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(APP_ID), "{stderr}");
    assert!(stderr.contains("Account Kit app secret"), "{stderr}");
    assert!(!stderr.contains(WRONG_SECRET) && !stdout.contains(WRONG_SECRET));
}

#[test]
#[ignore = "needs the demo example built: cargo build --all-features --example demo"]
fn demo_with_an_unreachable_endpoint_warns_and_serves() {
    use std::io::{BufRead, BufReader};
    let emu = support::emulator();
    let host = emu.addr().to_string();
    emu.stop();
    let mut child = demo_command(&host, APP_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the demo");
    // It prints its address once the socket is bound, after the check.
    let stdout = child.stdout.take().expect("stdout");
    // The demo's logs go to stdout (tracing-subscriber's default).
    let mut logged = String::new();
    let mut serving = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout line");
        logged.push_str(&line);
        logged.push('\n');
        if let Some(addr) = line.strip_prefix("Demo API:") {
            serving = Some(addr.trim().to_owned());
            break;
        }
    }
    let still_running = child.try_wait().expect("try_wait").is_none();
    child.kill().expect("stop the demo");
    let out = child.wait_with_output().expect("demo output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        serving.is_some(),
        "the demo did not start: {logged}{stderr}"
    );
    assert!(still_running, "the demo exited: {logged}{stderr}");
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("cannot be reached"), "{logged}");
    assert!(logged.contains("starting anyway"), "{logged}");
    assert!(!logged.contains(APP_SECRET) && !stderr.contains(APP_SECRET));
}
