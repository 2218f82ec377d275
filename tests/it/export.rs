//! The account export, over real HTTP against the emulator with 10,000
//! accounts: the library call (`AdminClient::export_csv`) and the
//! `export_accounts` example run as a subprocess.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::process::example_bin;
use crate::support::{all_calls, calls, fault, APP_ID, APP_SECRET};
use actix_accountkit::admin::AdminClient;
use actix_accountkit::client::GraphClient;
use actix_accountkit::config::{Config, RetryPolicy};
use actix_accountkit::emulator::{Emulator, EmulatorApp};
use actix_accountkit::export::{ExportError, ExportOptions, ExportProgress, HEADER_LINE};
use actix_accountkit::Error;
use serde_json::json;

const ACCOUNTS: usize = 10_000;

fn emulator_10k() -> Emulator {
    Emulator::builder()
        .app(EmulatorApp::new(APP_ID, APP_SECRET))
        .seed_accounts(ACCOUNTS)
        .build()
        .expect("emulator starts")
}

/// An admin client with 3 retries (as the command has) and short backoffs.
fn admin(emu: &Emulator) -> AdminClient {
    let config = Config::builder(APP_ID, APP_SECRET)
        .base_url(emu.base_url())
        .timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        })
        .build()
        .expect("config");
    AdminClient::without_cache(GraphClient::new(config).expect("client"))
}

async fn export(
    admin: &AdminClient,
    options: &ExportOptions,
) -> (Vec<u8>, Result<ExportProgress, ExportError>) {
    let mut out = Vec::new();
    let result = admin.export_csv(&mut out, options).await;
    (out, result)
}

async fn clean_export(admin: &AdminClient) -> Vec<u8> {
    let (out, result) = export(admin, &ExportOptions::new()).await;
    let done = result.expect("clean export");
    assert_eq!(done.accounts, ACCOUNTS as u64);
    assert_eq!(done.bytes, out.len() as u64);
    out
}

/// The file holds the header, then the seeded accounts in creation order:
/// even indexes a phone `+1555NNNNNNN`, odd ones `userN@example.com`.
fn assert_is_the_seeded_listing(csv_bytes: &[u8]) {
    let text = std::str::from_utf8(csv_bytes).expect("UTF-8");
    assert!(text.starts_with(&format!("{HEADER_LINE}\n")), "header");
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_bytes);
    let headers = reader.headers().expect("headers").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        ["ID", " Phone", " Email"]
    );
    let mut ids = std::collections::HashSet::new();
    let mut rows = 0;
    for (i, record) in reader.records().enumerate() {
        let record = record.expect("a CSV record");
        assert_eq!(record.len(), 3);
        assert!(
            record[0].len() >= 15 && record[0].bytes().all(|b| b.is_ascii_digit()),
            "id {:?}",
            &record[0]
        );
        assert!(ids.insert(record[0].to_owned()), "duplicate id");
        if i % 2 == 0 {
            assert_eq!(&record[1], format!("+1555{:07}", i / 2));
            assert_eq!(&record[2], "");
        } else {
            assert_eq!(&record[1], "");
            assert_eq!(&record[2], format!("user{}@example.com", i / 2));
        }
        rows += 1;
    }
    assert_eq!(rows, ACCOUNTS);
}

#[tokio::test]
async fn page_sizes_1_7_and_1000_give_identical_files() {
    let emu = emulator_10k();
    let admin = admin(&emu);
    let reference = clean_export(&admin).await;
    assert_is_the_seeded_listing(&reference);
    for limit in [1, 7] {
        let mut pages = 0;
        let mut out = Vec::new();
        let done = admin
            .export_csv_with_progress(&mut out, &ExportOptions::new().limit(limit), |p| {
                pages = p.pages;
            })
            .await
            .expect("export");
        assert_eq!(done.pages, pages);
        assert!(out == reference, "limit {limit} gives a different file");
    }
    // 10 pages of 1000, 10,000 of 1, 1,429 of 7: no page fetched twice.
    assert_eq!(calls(&emu, "accounts").await, 10 + 10_000 + 1_429);
}

#[tokio::test]
async fn two_503s_then_two_429s_mid_way_still_give_the_full_file() {
    let emu = emulator_10k();
    let admin = admin(&emu);
    let reference = clean_export(&admin).await;

    // A proxy's 503 (no Graph body) twice, after three good pages.
    fault(
        &emu,
        json!({"status": 503, "body": "<html>Service Unavailable</html>", "times": 2, "after": 3}),
    )
    .await;
    let (out, result) = export(&admin, &ExportOptions::new()).await;
    result.expect("export through two 503s");
    assert!(out == reference, "the file differs after 503s");
    assert_eq!(calls(&emu, "accounts").await, 10 + 12);

    // Rate limiting (code 4) twice, after five good pages.
    fault(&emu, json!({"status": 429, "times": 2, "after": 5})).await;
    let (out, result) = export(&admin, &ExportOptions::new()).await;
    result.expect("export through rate limiting");
    assert!(out == reference, "the file differs after 429s");
    assert_eq!(calls(&emu, "accounts").await, 10 + 12 + 12);
}

#[tokio::test]
async fn retries_are_bounded_and_the_cursor_resumes_the_export() {
    let emu = emulator_10k();
    let admin = admin(&emu);
    let reference = clean_export(&admin).await;

    // Permanent 503s after two good pages: the first try and 3 retries.
    fault(
        &emu,
        json!({"status": 503, "body": "<html>Service Unavailable</html>", "after": 2}),
    )
    .await;
    let (mut out, result) = export(&admin, &ExportOptions::new()).await;
    let error = result.expect_err("the export fails");
    assert!(
        matches!(
            &error,
            ExportError::Fetch {
                source: Error::Decode { status: 503, .. },
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("after 2 complete pages (2000 accounts)"),
        "{message}"
    );
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(!format!("{message} {error:?}").contains(APP_SECRET));
    assert_eq!(calls(&emu, "accounts").await, 10 + 2 + 4);
    let progress = error.progress();
    assert_eq!(progress.bytes, out.len() as u64, "only complete pages");
    assert_eq!(out[..], reference[..out.len()]);
    let cursor = error.resume_cursor().expect("a resume cursor").to_owned();

    fault(&emu, json!({})).await;
    let resume = ExportOptions::new().after(cursor).header(false);
    let done = admin
        .export_csv(&mut out, &resume)
        .await
        .expect("the resumed export");
    assert_eq!(done.accounts, 8000);
    assert!(
        out == reference,
        "partial + resumed differs from a clean export"
    );

    // A code-2 answer (wrong credentials, per the recordings) is not retried.
    fault(&emu, json!({"status": 500, "after": 1})).await;
    let before = calls(&emu, "accounts").await;
    let (_, result) = export(&admin, &ExportOptions::new()).await;
    let error = result.expect_err("code 2 fails the export");
    assert!(
        matches!(&error, ExportError::Fetch { source, .. } if source.is_app_misconfigured()),
        "{error:?}"
    );
    assert_eq!(calls(&emu, "accounts").await, before + 2);
}

// ---------------------------------------------------------------------------
// The command, as a subprocess.

/// The `export_accounts` example binary, built from the current sources.
fn export_bin() -> PathBuf {
    example_bin("export_accounts")
}

/// Runs the command in `dir` with the secret in the environment.
fn run_cli(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(export_bin())
        .current_dir(dir)
        .env("ACCOUNTKIT_APP_SECRET", APP_SECRET)
        .args(args)
        .output()
        .expect("run export_accounts");
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

#[tokio::test]
async fn bad_flags_exit_non_zero_before_any_request() {
    let bin = export_bin();
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
        let output = run_cli(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        let text = stderr(&output);
        assert!(text.contains(expected), "{extra:?}: {text}");
    }
    // No secret at all: neither -s nor the environment.
    let output = Command::new(&bin)
        .current_dir(dir.path())
        .env_remove("ACCOUNTKIT_APP_SECRET")
        .args(base)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--appsecret"),
        "{}",
        stderr(&output)
    );
    // --help explains every flag.
    let help = run_cli(dir.path(), &["--help"]);
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

    assert_eq!(all_calls(&emu).await, 0, "a request was made");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn the_command_retries_keeps_a_partial_file_and_resumes_it() {
    let emu = emulator_10k();
    let reference = clean_export(&admin(&emu)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = ["-a", APP_ID, "--base-url", emu.base_url()];
    let read = |name: &str| std::fs::read(dir.path().join(name)).expect(name);

    // A clean run with the defaults (-l 1000, accountkit_export.csv).
    let output = run_cli(dir.path(), &base);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exported 10000 accounts in 10 pages to accountkit_export.csv"),
        "{}",
        stderr(&output)
    );
    assert!(read("accountkit_export.csv") == reference);

    // Two 503s mid-way are retried (the command's own retry policy).
    fault(
        &emu,
        json!({"status": 503, "body": "<html>busy</html>", "times": 2, "after": 3}),
    )
    .await;
    let output = run_cli(
        dir.path(),
        &[&base[..], &["-l", "7", "-f", "retried.csv"]].concat(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(read("retried.csv") == reference);

    // A permanent failure (code 2) after 4 pages of 1000.
    fault(&emu, json!({"status": 500, "after": 4})).await;
    let output = run_cli(dir.path(), &[&base[..], &["-f", "out.csv"]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("could not fetch the accounts after 4 complete pages"),
        "{text}"
    );
    assert!(text.contains("code 2"), "{text}");
    assert!(text.contains("out.csv.partial"), "{text}");
    let cursor = text
        .lines()
        .find_map(|l| l.strip_prefix("resume cursor: "))
        .expect("a resume cursor line")
        .to_owned();
    assert_eq!(
        files_in(dir.path()),
        ["accountkit_export.csv", "out.csv.partial", "retried.csv"],
        "no out.csv, no temporary file left"
    );
    let partial = read("out.csv.partial");
    let rows = partial.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(rows, 1 + 4000, "header and four complete pages");
    assert_eq!(partial[..], reference[..partial.len()]);
    fault(&emu, json!({})).await;

    // Starting over would replace the partial file: refused, no request.
    let before = all_calls(&emu).await;
    let output = run_cli(dir.path(), &[&base[..], &["-f", "out.csv"]].concat());
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--after"), "{}", stderr(&output));
    assert_eq!(all_calls(&emu).await, before);

    // Without the partial file, --after writes the rest alone: the
    // concatenation is a clean export.
    let output = run_cli(
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
    let output = Command::new(export_bin())
        .current_dir(dir.path())
        .env_remove("ACCOUNTKIT_APP_SECRET")
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
