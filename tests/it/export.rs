//! The account export, over real HTTP against the emulator with 10,000
//! accounts: the library call (`AdminClient::export_csv`). The command,
//! `accountkit-export`, is tested in `cli`.

use std::time::Duration;

use crate::support::{calls, fault, APP_ID, APP_SECRET};
use actix_accountkit::admin::AdminClient;
use actix_accountkit::client::GraphClient;
use actix_accountkit::config::{Config, RetryPolicy};
use actix_accountkit::emulator::{Emulator, EmulatorApp};
use actix_accountkit::export::{ExportError, ExportOptions, ExportProgress, HEADER_LINE};
use actix_accountkit::Error;
use serde_json::json;

const ACCOUNTS: usize = 10_000;

pub fn emulator_10k() -> Emulator {
    Emulator::builder()
        .app(EmulatorApp::new(APP_ID, APP_SECRET))
        .seed_accounts(ACCOUNTS)
        .build()
        .expect("emulator starts")
}

/// An admin client with 3 retries (as the command has) and short backoffs.
pub fn admin(emu: &Emulator) -> AdminClient {
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

pub async fn clean_export(admin: &AdminClient) -> Vec<u8> {
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

    // A code 2 that persists (an outage, or wrong credentials: the answer
    // cannot tell) is retried like the 503s, then fails the export.
    fault(&emu, json!({"status": 500, "after": 1})).await;
    let before = calls(&emu, "accounts").await;
    let (_, result) = export(&admin, &ExportOptions::new()).await;
    let error = result.expect_err("code 2 fails the export");
    assert!(
        matches!(&error, ExportError::Fetch { source, .. } if source.is_app_misconfigured()),
        "{error:?}"
    );
    assert_eq!(calls(&emu, "accounts").await, before + 1 + 4);
}
