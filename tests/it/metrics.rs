//! `GET /metrics` (feature `prometheus`) over real HTTP: an app served as
//! the demo serves it, driven through hits, misses, refusals and every
//! Graph call; the scraped values match what happened (and the emulator's
//! own call counters), and the output passes `promtool check metrics`
//! (Debian package `prometheus`; the test fails if it is missing).

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;
use actix_accountkit::metrics::{self, Registry};
use actix_web::{web, App};
use serde_json::json;

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("a sample line");
            (key.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> u64 {
    let v = samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"));
    *v as u64
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run promtool ({e}): install it, e.g. `apt-get install -y prometheus` \
             (the Debian package that provides promtool), as .ci/run does"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[actix_web::test]
async fn metrics_count_what_happened_and_pass_promtool() {
    let emu = emulator();
    let kit = kit(&emu);
    // As the demo does.
    let mut registry = Registry::default();
    kit.register_metrics(&mut registry);
    let serve_metrics = metrics::endpoint("/metrics", registry);
    let k = kit.clone();
    let app = serve!(move || {
        App::new().configure(serve_metrics.clone()).service(
            web::resource("/me")
                .wrap(k.auth().clone())
                .route(web::get().to(me)),
        )
    });
    let status = |token: Option<&'static str>| {
        let url = app.url("/me");
        async move { get_with(&url, token).await.status().as_u16() }
    };

    let user = login(&emu, "+15554440001").await;
    let other = login(&emu, "+15554440002").await;
    let down = login(&emu, "+15554440003").await;
    let token: &'static str = Box::leak(user.token.clone().into_boxed_str());
    let down_token: &'static str = Box::leak(down.token.clone().into_boxed_str());
    // One miss (an upstream call), then two hits.
    for _ in 0..3 {
        assert_eq!(status(Some(token)).await, 200);
    }
    // A refused token: a miss, then a cached refusal.
    for _ in 0..2 {
        assert_eq!(status(Some("EMAWboguszzzz")).await, 401);
    }
    assert_eq!(status(None).await, 401); // missing_token
    assert_eq!(status(Some("bad!token")).await, 401); // malformed
    assert_eq!(status(Some("two words")).await, 400); // ambiguous
                                                      // Account Kit answering garbage twice (the call and its retry): 503.
    fault(&emu, json!({"status": 503, "body": "<html>", "times": 2})).await;
    assert_eq!(status(Some(down_token)).await, 503); // unavailable
                                                     // Every other Graph call, once each.
    let admin = kit.admin();
    admin.exchange_code(&other.code).await.unwrap();
    admin.logout(&other.token).await.unwrap();
    admin.invalidate_all_tokens(&down.account_id).await.unwrap();
    admin.delete_account(&down.account_id).await.unwrap();
    admin.accounts_page(10, None).await.unwrap();
    kit.client().check_app_credentials().await.unwrap();

    let response = http().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        metrics::PROMETHEUS_CONTENT_TYPE
    );
    let text = response.text().await.unwrap();
    let s = samples(&text);
    let stats = kit.cache().stats();

    assert_eq!(value(&s, "accountkit_cache_hits_total"), 2);
    assert_eq!(value(&s, "accountkit_cache_negative_hits_total"), 1);
    assert_eq!(value(&s, "accountkit_cache_misses_total"), 3);
    assert_eq!(value(&s, "accountkit_upstream_calls_total"), 3);
    assert_eq!(value(&s, "accountkit_upstream_in_flight"), 0);
    assert_eq!(value(&s, "accountkit_cache_entries"), stats.entries);
    assert_eq!(
        value(&s, "accountkit_cache_negative_entries"),
        stats.negative_entries
    );
    assert_eq!(
        value(&s, "accountkit_cache_invalidations_total"),
        stats.invalidations
    );
    for (reason, n) in [
        ("missing_token", 1),
        ("ambiguous", 1),
        ("malformed", 1),
        ("invalid_token", 2),
        ("wrong_app", 0),
        ("unavailable", 1),
        ("misconfigured", 0),
        ("overloaded", 0),
    ] {
        let key = format!("accountkit_refusals_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&s, &key), n, "{key}");
    }
    // One observation per request the emulator received, by call.
    let count = |call: &str| {
        value(
            &s,
            &format!("accountkit_upstream_duration_seconds_count{{call=\"{call}\"}}"),
        )
    };
    let emulator_saw = stats_of(&emu).await;
    assert_eq!(count("me"), emulator_saw["me"], "{emulator_saw:?}");
    assert_eq!(count("me"), 4, "2 verifications, and a call retried once");
    for call in ["access_token", "logout", "invalidate_all_tokens", "delete"] {
        assert_eq!(count(call), emulator_saw[call], "{call}");
        assert_eq!(count(call), 1, "{call}");
    }
    assert_eq!(count("credentials_check"), 1);
    assert_eq!(
        count("accounts") + count("credentials_check"),
        emulator_saw["accounts"]
    );
    for call in ["me", "accounts"] {
        let inf =
            format!("accountkit_upstream_duration_seconds_bucket{{le=\"+Inf\",call=\"{call}\"}}");
        assert_eq!(value(&s, &inf), count(call), "{inf}");
    }

    if let Err(complaints) = promtool_check(&text) {
        panic!("promtool check metrics refused /metrics:\n{complaints}\n{text}");
    }

    // A scraper that asks for OpenMetrics gets it.
    let response = http()
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        metrics::OPENMETRICS_CONTENT_TYPE
    );
    let openmetrics = response.text().await.unwrap();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE accountkit_cache_hits counter\n"));
    assert!(openmetrics.contains("\naccountkit_cache_hits_total 2\n"));
    assert!(openmetrics.contains("# UNIT accountkit_upstream_duration_seconds seconds\n"));
}

/// The emulator's call counters, by kind.
async fn stats_of(emu: &actix_accountkit::emulator::Emulator) -> HashMap<String, u64> {
    let v = stats(emu).await;
    v.as_object()
        .expect("stats object")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("a counter")))
        .collect()
}

/// The kit's metrics in the Prometheus text format.
fn scrape(kit: &actix_accountkit::AccountKit) -> String {
    let mut registry = Registry::default();
    kit.register_metrics(&mut registry);
    metrics::encode(&registry, None).unwrap().body
}

/// A kit with a shared tier, so that its metrics are exported too.
fn kit_with_shared_tier(
    emu: &actix_accountkit::emulator::Emulator,
) -> actix_accountkit::AccountKit {
    actix_accountkit::AccountKit::builder(config(emu).build().unwrap())
        .shared_tier(crate::tracing_spans::MemoryTier::default())
        .build()
        .unwrap()
}

/// With a shared tier, its counters are exported too; without, none.
#[actix_web::test]
async fn shared_tier_counters_are_exported_when_there_is_one() {
    let emu = emulator();
    let without = kit(&emu);
    let text = scrape(&kit_with_shared_tier(&emu));
    let s = samples(&text);
    assert_eq!(value(&s, "accountkit_shared_connected"), 1);
    for counter in [
        "errors",
        "revocations_published",
        "revocations_received",
        "resyncs",
        "reconnects",
        "rejected_entries",
    ] {
        assert_eq!(value(&s, &format!("accountkit_shared_{counter}_total")), 0);
    }
    assert_eq!(value(&s, "accountkit_shared_revocations_pending"), 0);
    promtool_check(&text).unwrap_or_else(|c| panic!("{c}\n{text}"));
    assert!(!scrape(&without).contains("accountkit_shared_"));
}

/// The admission policy's counters and the max-age re-verifications are
/// exported, equal to `CacheStats`, and move when the cache is driven past
/// its capacity.
#[actix_web::test]
async fn policy_counters_are_exported() {
    use actix_accountkit::cache::CacheConfig;
    use actix_accountkit::verify::Verifier;
    use std::time::Duration;

    let emu = emulator();
    let cache = CacheConfig::builder()
        .capacity(4)
        .shards(1)
        .build()
        .unwrap();
    let kit = actix_accountkit::AccountKit::builder(config(&emu).build().unwrap())
        .cache(cache)
        .build()
        .unwrap();
    let before = samples(&scrape(&kit));
    for name in ["admitted", "rejected", "too_old"] {
        assert_eq!(value(&before, &format!("accountkit_cache_{name}_total")), 0);
    }
    assert!(value(&before, "accountkit_cache_window_size") >= 1);

    // One popular token, and twelve others seen once each: the cache fills,
    // the popular one is admitted, the one-off tokens lose the contest.
    let popular = login(&emu, "+15554450000").await;
    for i in 1..=12 {
        let other = login(&emu, &format!("+1555445{i:04}")).await;
        for _ in 0..3 {
            assert!(kit.cache().verify(&popular.token).await.is_ok());
        }
        assert!(kit.cache().verify(&other.token).await.is_ok());
    }
    // A route with a max age of 0 re-verifies the cached popular token.
    assert!(kit
        .cache()
        .verify_within(&popular.token, Duration::ZERO)
        .await
        .is_ok());

    let s = samples(&scrape(&kit));
    let stats = kit.cache().stats();
    assert!(stats.admitted > 0, "{stats:?}");
    assert!(stats.rejected > 0, "{stats:?}");
    assert_eq!(stats.too_old, 1);
    assert_eq!(value(&s, "accountkit_cache_too_old_total"), 1);
    assert!(stats.window_size >= 1 && stats.window_size < 4, "{stats:?}");
    assert!(stats.aging_period > 0, "{stats:?}");
    // Sixty-odd sightings in a cache of 4 age its sketch; its window of
    // one entry has not moved (the cache's own tests move it).
    assert!(stats.sketch_agings > 0, "{stats:?}");
    for (name, want) in [
        ("accountkit_cache_admitted_total", stats.admitted),
        ("accountkit_cache_rejected_total", stats.rejected),
        ("accountkit_cache_window_size", stats.window_size),
        ("accountkit_cache_aging_period", stats.aging_period),
        ("accountkit_cache_sketch_agings_total", stats.sketch_agings),
        (
            "accountkit_cache_window_adjustments_total",
            stats.window_adjustments,
        ),
    ] {
        assert_eq!(value(&s, name), want, "{name}");
    }
    assert_ne!(stats.sketch_agings, stats.window_adjustments, "{stats:?}");
}

/// The names in a document that look like our metrics: every backquoted
/// `accountkit_…`, cut at its labels.
fn documented<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
    lines
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .filter(|quoted| quoted.starts_with("accountkit_"))
        .filter_map(|quoted| {
            quoted
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .next()
        })
        .collect()
}

/// The README's metrics table and the `metrics` module's documentation
/// list exactly the metrics exported (a shared tier set, so that every
/// family shows): the two copies of the list cannot drift from the code,
/// nor from each other.
#[actix_web::test]
async fn the_documented_metrics_are_the_exported_ones() {
    let text = scrape(&kit_with_shared_tier(&emulator()));
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| match l.split_once(' ') {
            Some((name, "counter")) if !name.ends_with("_total") => format!("{name}_total"),
            Some((name, _)) => name.to_owned(),
            None => panic!("a TYPE line without a type: {l}"),
        })
        .collect();
    assert!(exported.len() > 20, "{exported:?}");
    let exported: BTreeSet<&str> = exported.iter().map(String::as_str).collect();

    let readme = include_str!("../../README.md");
    let module = include_str!("../../src/metrics.rs");
    for (what, listed) in [
        (
            "README.md's metrics table",
            documented(readme.lines().filter(|l| l.starts_with("| `accountkit_"))),
        ),
        (
            "the metrics module's documentation",
            documented(module.lines().filter_map(|l| l.strip_prefix("//!"))),
        ),
    ] {
        let unlisted: Vec<_> = exported.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&exported).collect();
        assert!(
            unlisted.is_empty() && unknown.is_empty(),
            "{what}: exported but not listed {unlisted:?}; listed but not exported {unknown:?}"
        );
    }
}
