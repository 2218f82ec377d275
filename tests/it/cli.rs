//! The installable commands (feature `cli`), run as child processes over
//! real HTTP: `accountkit-emulator` (driven from Rust through
//! `EmulatorControl` by URL, as a user's tests would) and
//! `accountkit-export`, with its exit codes: 0 done, 1 failed (partial file
//! kept), 2 bad flags (nothing requested), 130 interrupted.

use std::path::Path;
use std::process::{Command, Output};

use actix_accountkit::config::Config;
use actix_accountkit::emulator::{EmulatorControl, Fault};
use actix_accountkit::AccountKit;

use crate::export::{admin, clean_export, emulator_10k};
use crate::support::process::{clean_env, Spawned};
use crate::support::{self, APP_ID, APP_SECRET, CLIENT_TOKEN, OTHER_APP_ID, OTHER_APP_SECRET};

const EMULATOR: &str = env!("CARGO_BIN_EXE_accountkit-emulator");
const EXPORT: &str = env!("CARGO_BIN_EXE_accountkit-export");

/// Sends SIGINT (Ctrl-C) to `pid`, through the shell's own `kill`.
fn interrupt(pid: u32) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -INT {pid} failed");
}

/// The emulator command on a free port, with the app secret from the
/// environment; its base URL once it accepts connections.
fn start_emulator(args: &[&str]) -> (Spawned, String) {
    let mut cmd = Command::new(EMULATOR);
    clean_env(&mut cmd)
        .env("ACCOUNTKIT_APP_SECRET", APP_SECRET)
        .args(["--addr", "127.0.0.1:0", "--app-id", APP_ID])
        .args(args);
    let mut emulator = Spawned::start(&mut cmd);
    let Some(rest) = emulator.line_starting_with("http://") else {
        panic!("the emulator did not start:\n{}", emulator.wait().output());
    };
    (emulator, format!("http://{rest}"))
}

#[actix_rt::test]
async fn the_emulator_command_serves_its_flags_and_stops_on_ctrl_c() {
    let extra_app = format!("{OTHER_APP_ID}:{OTHER_APP_SECRET}");
    let (emulator, url) = start_emulator(&[
        "--client-token",
        CLIENT_TOKEN,
        "--accounts",
        "3",
        "--require-appsecret-proof",
        "--extra-app",
        &extra_app,
    ]);
    let control = EmulatorControl::new(&url).expect("the printed URL");

    // The app of --app-id, with the secret from the environment.
    let config = Config::builder(APP_ID, APP_SECRET)
        .client_token(CLIENT_TOKEN)
        .base_url(&url)
        .build()
        .expect("config");
    let kit = AccountKit::new(config).expect("kit");
    kit.check().await.expect("the credentials of --app-id pass");
    let login = control.login_phone("+15555550100").await.expect("login");
    let account = kit.client().me(&login.access_token).await.expect("/me");
    assert_eq!(account.id, login.account_id);
    // --client-token: the code exchange with AA|id|client_token.
    let exchanged = kit.admin().exchange_code(&login.code).await.expect("code");
    assert_eq!(exchanged.id, login.account_id);
    // --accounts 3, plus the login.
    let page = kit
        .admin()
        .accounts_page(100, None)
        .await
        .expect("accounts");
    assert_eq!(page.data.len(), 4);
    // --require-appsecret-proof: /me without a proof is refused.
    let bare = support::http()
        .get(format!("{url}/v1.3/me"))
        .query(&[("access_token", login.access_token.as_str())])
        .send()
        .await
        .expect("/me without proof");
    assert_eq!(bare.status(), 400);
    // --extra-app: a second app, with logins of its own.
    let other = control
        .app(OTHER_APP_ID)
        .login_email("ada@example.com")
        .await;
    let other = other.expect("login in the extra app");
    assert_ne!(other.account_id, login.account_id);

    let calls = control.calls().await.expect("calls");
    assert_eq!(
        (calls.me, calls.access_token, calls.accounts),
        (2, 1, 2),
        "{calls:?}"
    );

    interrupt(emulator.id());
    let out = emulator.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.output());
    for secret in [APP_SECRET, CLIENT_TOKEN, OTHER_APP_SECRET] {
        assert!(!out.output().contains(secret), "a secret was printed");
    }
}

#[test]
fn the_emulator_command_refuses_bad_flags() {
    for (args, expected) in [
        (&["--extra-app", "no-colon"][..], "expected ID:SECRET"),
        (&["--accounts", "many"][..], "--accounts"),
        (&["--addr", "not-an-address"][..], "--addr"),
    ] {
        let mut cmd = Command::new(EMULATOR);
        clean_env(&mut cmd)
            .env("ACCOUNTKIT_APP_SECRET", APP_SECRET)
            .args(["--app-id", APP_ID])
            .args(args);
        let out = Spawned::start(&mut cmd).wait();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.output());
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.output());
    }
}

/// Both commands together, as an operator would use them: the export of
/// the accounts of an emulator started by the emulator command.
#[actix_rt::test]
async fn the_export_command_exports_from_the_emulator_command() {
    let (emulator, url) = start_emulator(&["--accounts", "25"]);
    let control = EmulatorControl::new(&url).expect("the printed URL");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_export(dir.path(), &["-a", APP_ID, "--base-url", &url, "-l", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(dir.path().join("accountkit_export.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + 25, "{csv}");
    assert!(csv.starts_with("ID, Phone, Email\n"));
    assert_eq!(control.calls().await.expect("calls").accounts, 3);
    drop(emulator);
}

// ---- accountkit-export ----

/// The export command in `dir`, seeing only the environment given here.
fn export_command(dir: &Path) -> Command {
    let mut cmd = Command::new(EXPORT);
    clean_env(&mut cmd).current_dir(dir);
    cmd
}

/// Runs the export command in `dir` with the secret in the environment.
fn run_export(dir: &Path, args: &[&str]) -> Output {
    let output = export_command(dir)
        .env("ACCOUNTKIT_APP_SECRET", APP_SECRET)
        .args(args)
        .output()
        .expect("run accountkit-export");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains(APP_SECRET), "the secret leaked: {text}");
    assert!(
        !text.contains("access_token"),
        "a credentialed URL leaked: {text}"
    );
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A wrong secret is code 2 too, retried like an outage; then the command
/// asks Account Kit without credentials, finds it up, and says which.
#[tokio::test]
async fn export_with_a_refused_secret_says_so() {
    let emu = support::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = "the-facebook-app-secret-not-account-kits";
    let output = export_command(dir.path())
        .env("ACCOUNTKIT_APP_SECRET", wrong)
        .args(["-a", APP_ID, "--base-url", emu.base_url()])
        .output()
        .expect("run accountkit-export");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("code 2"), "{text}");
    assert!(text.contains("refuses the app id or app secret"), "{text}");
    assert!(!text.contains(wrong), "the secret leaked: {text}");
    assert_eq!(support::calls(&emu, "accounts").await, 1 + 3, "retried");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn export_bad_flags_exit_2_before_any_request() {
    let emu = emulator_10k();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = ["-a", APP_ID, "--base-url", emu.base_url()];
    let cases: [(&[&str], &str); 6] = [
        (&["-l", "0"], "limit should be in the range 1-1000"),
        (&["-l", "1001"], "limit should be in the range 1-1000"),
        (&["--limit", "ten"], "limit should be in the range 1-1000"),
        (&["-v", "1.3"], "double check your api version number"),
        (&["--version", "v1"], "double check your api version number"),
        (
            &["--appid=12x"],
            "the app id must be the decimal Facebook app id",
        ),
    ];
    for (extra, expected) in cases {
        let args = if extra[0].starts_with("--appid") {
            [extra, &base[2..]].concat()
        } else {
            [&base[..], extra].concat()
        };
        let output = run_export(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        let text = stderr(&output);
        assert!(text.contains(expected), "{extra:?}: {text}");
    }
    // No secret at all: neither -s nor the environment.
    let output = export_command(dir.path()).args(base).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--appsecret"),
        "{}",
        stderr(&output)
    );
    // --help explains every flag.
    let help = run_export(dir.path(), &["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--appid",
        "--appsecret",
        "ACCOUNTKIT_APP_SECRET",
        "--limit",
        "--file",
        "--version",
        "--base-url",
        "--after",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }

    assert_eq!(emu.control().calls().await.expect("calls").total(), 0);
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn export_retries_exits_1_keeping_a_partial_file_and_resumes_it() {
    let emu = emulator_10k();
    let control = emu.control();
    let reference = clean_export(&admin(&emu)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = ["-a", APP_ID, "--base-url", emu.base_url()];
    let read = |name: &str| std::fs::read(dir.path().join(name)).expect(name);
    let accounts_calls = || async { control.calls().await.expect("calls").accounts };

    // A clean run with the defaults (-l 1000, accountkit_export.csv).
    let output = run_export(dir.path(), &base);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exported 10000 accounts in 10 pages to accountkit_export.csv"),
        "{}",
        stderr(&output)
    );
    assert!(read("accountkit_export.csv") == reference);

    // Two 503s mid-way are retried (the command's own retry policy).
    let busy = Fault::new().status(503).body("<html>busy</html>");
    control
        .set_fault(&busy.times(2).after(3))
        .await
        .expect("fault");
    let output = run_export(
        dir.path(),
        &[&base[..], &["-l", "7", "-f", "retried.csv"]].concat(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(read("retried.csv") == reference);

    // So are two transient code 2s (Graph's "service temporarily
    // unavailable") on one page.
    support::fault(
        &emu,
        serde_json::json!({"code2": "transient", "times": 2, "after": 5}),
    )
    .await;
    let output = run_export(dir.path(), &[&base[..], &["-f", "code2.csv"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(read("code2.csv") == reference);

    // A permanent failure (code 2 on every attempt, 3 retries, and on the
    // credential-free probe too: an outage) after 4 pages of 1000.
    control
        .set_fault(&Fault::new().status(500).after(4))
        .await
        .expect("fault");
    let output = run_export(dir.path(), &[&base[..], &["-f", "out.csv"]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("could not fetch the accounts after 4 complete pages"),
        "{text}"
    );
    assert!(text.contains("code 2"), "{text}");
    assert!(text.contains("it is not answering"), "{text}");
    assert!(text.contains("out.csv.partial"), "{text}");
    let cursor = text
        .lines()
        .find_map(|l| l.strip_prefix("resume cursor: "))
        .expect("a resume cursor line")
        .to_owned();
    assert_eq!(
        files_in(dir.path()),
        [
            "accountkit_export.csv",
            "code2.csv",
            "out.csv.partial",
            "retried.csv"
        ],
        "no out.csv, no temporary file left"
    );
    let partial = read("out.csv.partial");
    let rows = partial.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(rows, 1 + 4000, "header and four complete pages");
    assert_eq!(partial[..], reference[..partial.len()]);
    control.clear_faults().await.expect("clear");

    // Starting over would replace the partial file: refused, no request.
    let before = accounts_calls().await;
    let output = run_export(dir.path(), &[&base[..], &["-f", "out.csv"]].concat());
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--after"), "{}", stderr(&output));
    assert_eq!(accounts_calls().await, before);

    // Without the partial file, --after writes the rest alone: the
    // concatenation is a clean export.
    let output = run_export(
        dir.path(),
        &[
            &base[..],
            &["-l", "7", "-f", "rest.csv", "--after", &cursor],
        ]
        .concat(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!([partial, read("rest.csv")].concat() == reference);

    // --after continues the partial file into one complete file (secret
    // given as a flag this time).
    let output = export_command(dir.path())
        .args(base)
        .args(["-s", APP_SECRET, "-f", "out.csv", "--after", &cursor])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains(APP_SECRET));
    assert!(
        read("out.csv") == reference,
        "resumed file differs from a clean export"
    );
    assert!(
        !dir.path().join("out.csv.partial").exists(),
        "partial file removed"
    );
}

#[tokio::test]
async fn export_interrupted_exits_130_and_leaves_the_file_untouched() {
    let emu = emulator_10k();
    let control = emu.control();
    // Every page hangs until the emulator is dropped.
    control
        .set_fault(&Fault::new().latency(std::time::Duration::from_secs(3600)))
        .await
        .expect("fault");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = export_command(dir.path());
    cmd.env("ACCOUNTKIT_APP_SECRET", APP_SECRET)
        .args(["-a", APP_ID, "--base-url", emu.base_url()]);
    let mut export = Spawned::start(&mut cmd);
    // Ready to be interrupted once its first page request arrived (its
    // Ctrl-C handler is installed before it sends anything): polled.
    while control.calls().await.expect("calls").accounts == 0 {
        if !export.is_running() {
            panic!("the export ended early:\n{}", export.wait().output());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    interrupt(export.id());
    let out = export.wait();
    assert_eq!(out.status.code(), Some(130), "{}", out.output());
    assert!(out.stderr.contains("interrupted"), "{}", out.output());
    assert!(
        out.stderr.contains("accountkit_export.csv is untouched"),
        "{}",
        out.output()
    );
    assert!(!out.output().contains(APP_SECRET), "the secret leaked");
    assert!(
        files_in(dir.path()).is_empty(),
        "no file, no temporary file: {:?}",
        files_in(dir.path())
    );
}
