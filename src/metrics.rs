//! Prometheus metrics (feature `prometheus`), with the official
//! [`prometheus-client`](prometheus_client) crate: a [`Collector`] that
//! reads the counters at scrape time, and a `GET /metrics` endpoint.
//!
//! # Registering
//!
//! ```no_run
//! use actix_accountkit::metrics::{self, Registry};
//! use actix_accountkit::{AccountKit, Config};
//! use actix_web::{App, HttpServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let kit = AccountKit::new(Config::builder("1234", "account-kit-app-secret").build()?)?;
//! let mut registry = Registry::default(); // or the registry of your own metrics
//! kit.register_metrics(&mut registry);
//! let serve_metrics = metrics::endpoint("/metrics", registry);
//! HttpServer::new(move || App::new().configure(serve_metrics.clone()).wrap(kit.auth().clone()))
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [`endpoint`] answers in the OpenMetrics text format when the scraper
//! asks for it (`Accept: application/openmetrics-text`, as Prometheus
//! does), and in the Prometheus text format 0.0.4 otherwise (`curl`,
//! `promtool check metrics`), with the matching `Content-Type`. [`encode`]
//! does the same for a handler of your own.
//!
//! # What is exported
//!
//! Read from the counters when scraped (nothing is added to the hit path):
//!
//! | metric | type | what |
//! |---|---|---|
//! | `accountkit_cache_hits_total` | counter | lookups answered with a cached account |
//! | `accountkit_cache_negative_hits_total` | counter | lookups answered with a cached refusal |
//! | `accountkit_cache_misses_total` | counter | lookups not answered from the cache |
//! | `accountkit_cache_coalesced_total` | counter | misses that joined a verification under way |
//! | `accountkit_cache_shared_hits_total` | counter | verifications answered by the shared tier |
//! | `accountkit_cache_overloaded_total` | counter | misses refused because `max_in_flight` verifications were under way |
//! | `accountkit_cache_unanswered_total` | counter | verifications that ended without an answer (past their deadline, cancelled) |
//! | `accountkit_cache_evictions_total` | counter | entries pushed out by the capacity bound |
//! | `accountkit_cache_expirations_total` | counter | entries removed because they had expired |
//! | `accountkit_cache_invalidations_total` | counter | entries removed by a revocation |
//! | `accountkit_cache_too_old_total` | counter | lookups of a route with a max age that found an older account and verified it again |
//! | `accountkit_cache_admitted_total` | counter | accounts moved from the admission window into the main space |
//! | `accountkit_cache_rejected_total` | counter | accounts that lost the admission contest and left the cache |
//! | `accountkit_cache_window_size` | gauge | the admission window's current size, in entries, all shards (chosen by a trial across shards) |
//! | `accountkit_cache_aging_period` | gauge | how long the frequency sketch remembers: sightings between two of its agings, all shards (chosen by a trial across shards) |
//! | `accountkit_cache_window_adjustments_total` | counter | changes of the admission window's size, each shard's counted |
//! | `accountkit_cache_sketch_agings_total` | counter | agings of the frequency sketch (every count halved), all shards |
//! | `accountkit_cache_entries` | gauge | verified accounts held |
//! | `accountkit_cache_negative_entries` | gauge | refusals held |
//! | `accountkit_upstream_calls_total` | counter | token verifications made at Account Kit |
//! | `accountkit_upstream_in_flight` | gauge | verifications under way |
//! | `accountkit_refusals_total{reason}` | counter | refusals answered by the middleware and the extractors |
//! | `accountkit_upstream_duration_seconds{call}` | histogram | duration of each request sent to Account Kit |
//!
//! and, with a [shared tier](crate::shared) (e.g. Redis), its
//! [`SharedStats`](crate::shared::SharedStats):
//! `accountkit_shared_connected` (gauge, 1 or 0),
//! `accountkit_shared_errors_total`,
//! `accountkit_shared_revocations_published_total`,
//! `accountkit_shared_revocations_received_total`,
//! `accountkit_shared_revocations_pending` (gauge),
//! `accountkit_shared_resyncs_total`, `accountkit_shared_reconnects_total`,
//! `accountkit_shared_rejected_entries_total`.
//!
//! `reason` is one of `missing_token`, `ambiguous` (more than one token, a
//! 400), `malformed`, `invalid_token`, `wrong_app` (401s), `unavailable`,
//! `misconfigured`, `overloaded` (503s). Each refusal is counted once, when
//! it is answered, whether it came from Account Kit or from the cache (a
//! cached refusal counts like a fresh one; `accountkit_cache_negative_hits_total`
//! tells them apart). Every reason is exported, at 0 until it happens.
//!
//! `call` is one of `me` (token verification), `access_token` (code
//! exchange), `logout`, `invalidate_all_tokens`, `delete`, `accounts` (a
//! page of the listing) and `credentials_check` (the app-token self-check,
//! and its credential-free `/me` probe, `GraphClient::check_service`).
//! Each HTTP request is one observation, retries included, whatever its
//! answer; a cache hit makes none. So `…_count{call="me"}` counts `/me`
//! requests, and `accountkit_upstream_calls_total` counts verifications
//! (one per flight, however many retries it took). Buckets from 1 ms to
//! 10 s.
//!
//! One collector per registry: two [`AccountKit`]s in one process (two
//! apps) each need their own registry, or one served under a
//! [sub-registry](Registry::sub_registry_with_prefix) each.

use std::fmt::{self, Write as _};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
pub use prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
pub use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;

use crate::auth::AccountKitAuth;
use crate::cache::CachedVerifier;
use crate::client::GraphClient;
use crate::kit::AccountKit;
use crate::observe::upstream::Call;
use crate::observe::Reason;

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl AccountKit {
    /// Registers this kit's metrics (cache, refusals, Account Kit call
    /// durations, shared tier) in `registry`. See [the module](crate::metrics)
    /// for the list.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.metrics_collector()));
    }

    /// The collector [`register_metrics`](Self::register_metrics) registers.
    pub fn metrics_collector(&self) -> MetricsCollector {
        MetricsCollector::new(self.cache())
            .with_client(self.client())
            .with_auth(self.auth())
    }
}

/// Reads a cache's counters (and, when given, a client's call durations and
/// a middleware's refusals) each time the registry is encoded. Cheap to
/// clone.
///
/// For a cache, client and middleware wired by hand rather than through
/// [`AccountKit`]:
///
/// ```
/// use actix_accountkit::cache::{CacheConfig, CachedVerifier};
/// use actix_accountkit::client::GraphClient;
/// use actix_accountkit::metrics::{MetricsCollector, Registry};
/// use actix_accountkit::verify::GraphVerifier;
/// use actix_accountkit::{AccountKitAuth, Config};
///
/// # fn main() -> Result<(), actix_accountkit::Error> {
/// let client = GraphClient::new(Config::builder("1234", "app-secret").build()?)?;
/// let cache = CachedVerifier::new(GraphVerifier::new(client.clone()), CacheConfig::default());
/// let auth = AccountKitAuth::new(cache.clone());
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(
///     MetricsCollector::new(&cache).with_client(&client).with_auth(&auth),
/// ));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MetricsCollector {
    cache: CachedVerifier,
    client: Option<GraphClient>,
    auth: Option<AccountKitAuth>,
}

impl MetricsCollector {
    /// The cache's counters (and its shared tier's).
    pub fn new(cache: &CachedVerifier) -> Self {
        Self {
            cache: cache.clone(),
            client: None,
            auth: None,
        }
    }

    /// Also `accountkit_upstream_duration_seconds`, from this client's
    /// requests.
    pub fn with_client(mut self, client: &GraphClient) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Also `accountkit_refusals_total`, from this middleware (and the
    /// values made from it by [`AccountKitAuth::to_builder`]).
    pub fn with_auth(mut self, auth: &AccountKitAuth) -> Self {
        self.auth = Some(auth.clone());
        self
    }
}

impl Collector for MetricsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let e = &mut encoder;
        let s = self.cache.stats();
        counter(
            e,
            "accountkit_cache_hits",
            "Lookups answered with a cached account.",
            s.hits,
        )?;
        counter(
            e,
            "accountkit_cache_negative_hits",
            "Lookups answered with a cached refusal.",
            s.negative_hits,
        )?;
        counter(
            e,
            "accountkit_cache_misses",
            "Lookups not answered from the cache (each started a verification, joined one, or was refused as overloaded).",
            s.misses,
        )?;
        counter(
            e,
            "accountkit_cache_coalesced",
            "Misses that waited for a verification already under way.",
            s.coalesced,
        )?;
        counter(
            e,
            "accountkit_cache_shared_hits",
            "Verifications answered by the shared tier, with no upstream call.",
            s.shared_hits,
        )?;
        counter(
            e,
            "accountkit_cache_overloaded",
            "Misses refused because max_in_flight verifications were already under way.",
            s.overloaded,
        )?;
        counter(
            e,
            "accountkit_cache_unanswered",
            "Verifications that ended without an answer (past their deadline, or cancelled).",
            s.unanswered,
        )?;
        counter(
            e,
            "accountkit_cache_evictions",
            "Entries pushed out by the capacity bound (accounts and refusals).",
            s.evictions,
        )?;
        counter(
            e,
            "accountkit_cache_expirations",
            "Entries removed because they had expired.",
            s.expirations,
        )?;
        counter(
            e,
            "accountkit_cache_invalidations",
            "Entries removed by a revocation (logout, invalidate-all, delete).",
            s.invalidations,
        )?;
        counter(
            e,
            "accountkit_cache_too_old",
            "Lookups of a route with a max age that found an account verified longer ago and verified it again.",
            s.too_old,
        )?;
        counter(
            e,
            "accountkit_cache_admitted",
            "Verified accounts moved from the admission window into the main space.",
            s.admitted,
        )?;
        counter(
            e,
            "accountkit_cache_rejected",
            "Verified accounts that lost the admission contest on leaving the window and left the cache.",
            s.rejected,
        )?;
        gauge(
            e,
            "accountkit_cache_window_size",
            "The admission window's current size in entries (all shards), chosen by trial or hill climbing.",
            s.window_size,
        )?;
        gauge(
            e,
            "accountkit_cache_aging_period",
            "Sightings between two agings of the frequency sketch (all shards), chosen by trial or hill climbing.",
            s.aging_period,
        )?;
        counter(
            e,
            "accountkit_cache_window_adjustments",
            "Changes of the admission window's size, each shard's counted (made by trial or hill climbing).",
            s.window_adjustments,
        )?;
        counter(
            e,
            "accountkit_cache_sketch_agings",
            "Agings of the frequency sketch (every count halved), all shards.",
            s.sketch_agings,
        )?;
        gauge(
            e,
            "accountkit_cache_entries",
            "Verified accounts held.",
            s.entries,
        )?;
        gauge(
            e,
            "accountkit_cache_negative_entries",
            "Refusals held.",
            s.negative_entries,
        )?;
        counter(
            e,
            "accountkit_upstream_calls",
            "Token verifications made at Account Kit (counted when they answer).",
            s.upstream_calls,
        )?;
        gauge(
            e,
            "accountkit_upstream_in_flight",
            "Token verifications under way at Account Kit.",
            s.in_flight,
        )?;
        if let Some(auth) = &self.auth {
            let refusals = auth.refusals();
            let mut family = e.encode_descriptor(
                "accountkit_refusals",
                "Refusals answered by the middleware and the extractors, by reason.",
                None,
                MetricType::Counter,
            )?;
            for reason in Reason::ALL {
                let labels = [("reason", reason.as_str())];
                ConstCounter::new(refusals.get(reason)).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(client) = &self.client {
            let mut family = e.encode_descriptor(
                "accountkit_upstream_duration",
                "Duration of each request sent to Account Kit, by call.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for call in Call::ALL {
                let labels = [("call", call.as_str())];
                client
                    .timings()
                    .histogram(call)
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(t) = s.shared {
            gauge(
                e,
                "accountkit_shared_connected",
                "Whether the shared tier is reachable (1) or not (0).",
                u64::from(t.connected),
            )?;
            counter(
                e,
                "accountkit_shared_errors",
                "Shared tier calls that failed or timed out.",
                t.errors,
            )?;
            counter(
                e,
                "accountkit_shared_revocations_published",
                "Revocations made here and delivered to the other instances.",
                t.revocations_published,
            )?;
            counter(
                e,
                "accountkit_shared_revocations_received",
                "Revocations received from the other instances.",
                t.revocations_received,
            )?;
            gauge(
                e,
                "accountkit_shared_revocations_pending",
                "Revocations waiting for the shared tier to be reachable.",
                t.revocations_pending,
            )?;
            counter(
                e,
                "accountkit_shared_resyncs",
                "Times the local cache was emptied of verified accounts because revocations may have been missed.",
                t.resyncs,
            )?;
            counter(
                e,
                "accountkit_shared_reconnects",
                "Times the shared tier connected again after losing its connection.",
                t.reconnects,
            )?;
            counter(
                e,
                "accountkit_shared_rejected_entries",
                "Shared entries refused because they failed their authentication check.",
                t.rejected_entries,
            )?;
        }
        Ok(())
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// An encoded registry and its `Content-Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exposition {
    /// [`OPENMETRICS_CONTENT_TYPE`] or [`PROMETHEUS_CONTENT_TYPE`].
    pub content_type: &'static str,
    /// The metrics.
    pub body: String,
}

/// Encodes `registry` in the format the `Accept` header asks for: OpenMetrics
/// text when it accepts `application/openmetrics-text`, the Prometheus text
/// format 0.0.4 otherwise (also without an `Accept` header).
///
/// ```
/// use actix_accountkit::metrics::{encode, Registry, PROMETHEUS_CONTENT_TYPE};
///
/// let exposition = encode(&Registry::default(), None).unwrap();
/// assert_eq!(exposition.content_type, PROMETHEUS_CONTENT_TYPE);
/// ```
///
/// # Errors
///
/// A metric that fails to encode.
pub fn encode(registry: &Registry, accept: Option<&str>) -> Result<Exposition, fmt::Error> {
    let mut openmetrics = String::new();
    prometheus_client::encoding::text::encode(&mut openmetrics, registry)?;
    if accept.is_some_and(accepts_openmetrics) {
        return Ok(Exposition {
            content_type: OPENMETRICS_CONTENT_TYPE,
            body: openmetrics,
        });
    }
    Ok(Exposition {
        content_type: PROMETHEUS_CONTENT_TYPE,
        body: to_prometheus_text(&openmetrics)?,
    })
}

/// A handler serving the [`Registry`] registered as `web::Data<Registry>`,
/// as [`encode`] does. [`endpoint`] registers both.
pub async fn handler(req: HttpRequest, registry: web::Data<Registry>) -> HttpResponse {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    match encode(&registry, accept) {
        Ok(exposition) => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static(exposition.content_type),
            ))
            .body(exposition.body),
        Err(_) => {
            tracing::error!("a metric failed to encode; /metrics answered 500");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// `GET path` serving `registry`, for `App::configure`; clone it into each
/// worker.
///
/// ```
/// use actix_accountkit::metrics::{endpoint, Registry};
/// use actix_web::App;
///
/// let serve_metrics = endpoint("/metrics", Registry::default());
/// let app = App::new().configure(serve_metrics.clone());
/// # let _ = app;
/// ```
pub fn endpoint(
    path: &str,
    registry: Registry,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let path = path.to_owned();
    let registry = web::Data::new(registry);
    move |config: &mut web::ServiceConfig| {
        config.service(
            web::resource(path.as_str())
                .app_data(registry.clone())
                .route(web::get().to(handler)),
        );
    }
}

/// Whether an `Accept` header accepts OpenMetrics text (with a q-value
/// above 0).
fn accepts_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// Rewrites prometheus-client's OpenMetrics text as the Prometheus text
/// format 0.0.4, which `promtool` and older scrapers read: a counter's
/// `HELP` and `TYPE` name its `_total` samples, an info metric becomes a
/// gauge named `…_info`, `unknown` becomes `untyped`; `UNIT` and `EOF`
/// lines, `_created` samples and exemplars are dropped, and `HELP` text
/// keeps only the escapes 0.0.4 knows.
fn to_prometheus_text(openmetrics: &str) -> Result<String, fmt::Error> {
    use std::collections::HashMap;
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_once(' '))
        {
            types.insert(name, kind);
        }
    }
    let renamed = |name: &str| -> String {
        match types.get(name) {
            Some(&"counter") => format!("{name}_total"),
            Some(&"info") => format!("{name}_info"),
            _ => name.to_owned(),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            writeln!(out, "# HELP {} {}", renamed(name), unescape_quotes(help))?;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "info" => "gauge",
                "unknown" => "untyped",
                kind => kind,
            };
            writeln!(out, "# TYPE {} {kind}", renamed(name))?;
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`: not in 0.0.4.
        } else if !line.is_empty() {
            let sample = without_exemplar(line);
            let name = sample_name(sample);
            let created = name.strip_suffix("_created").is_some_and(|family| {
                matches!(types.get(family), Some(&"counter") | Some(&"histogram"))
            });
            if !created {
                out.push_str(sample);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

fn sample_name(sample: &str) -> &str {
    let end = sample.find(['{', ' ']).unwrap_or(sample.len());
    &sample[..end]
}

/// A sample line without its exemplar (` # {…} value`), found after the
/// label set so that a `#` inside a label value is left alone.
fn without_exemplar(sample: &str) -> &str {
    let labels_end = match sample.find(['{', ' ']) {
        Some(i) if sample.as_bytes()[i] == b'{' => {
            let mut escaped = false;
            let mut quoted = false;
            let mut end = sample.len();
            for (j, c) in sample[i..].char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '}' if !quoted => {
                        end = i + j + 1;
                        break;
                    }
                    _ => {}
                }
            }
            end
        }
        _ => 0,
    };
    match sample[labels_end..].find(" # ") {
        Some(k) => &sample[..labels_end + k],
        None => sample,
    }
}

/// OpenMetrics escapes `"` in `HELP` text; 0.0.4 knows only `\\` and `\n`.
fn unescape_quotes(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('"') => out.push('"'),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let scraper = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(accepts_openmetrics(scraper));
        assert!(accepts_openmetrics("Application/OpenMetrics-Text"));
        assert!(!accepts_openmetrics(prometheus));
        assert!(!accepts_openmetrics("application/openmetrics-text; q=0"));
        assert!(!accepts_openmetrics("*/*"));
    }

    #[test]
    fn openmetrics_text_becomes_prometheus_text() {
        let openmetrics = "\
# HELP a_hits Hits \\\"quoted\\\" and \\\\ kept.
# TYPE a_hits counter
a_hits_total{k=\"v # } x\"} 3 # {trace_id=\"1\"} 1.0
a_hits_created 1.0
# HELP a_up Up.
# TYPE a_up gauge
a_up 1
# HELP a_build Build.
# TYPE a_build info
a_build_info{version=\"1\"} 1
# HELP a_odd Odd.
# TYPE a_odd unknown
a_odd 2
# HELP a_d_seconds Duration.
# TYPE a_d_seconds histogram
# UNIT a_d_seconds seconds
a_d_seconds_sum 0.5
a_d_seconds_count 1
a_d_seconds_bucket{le=\"+Inf\"} 1
# EOF
";
        let expected = "\
# HELP a_hits_total Hits \"quoted\" and \\\\ kept.
# TYPE a_hits_total counter
a_hits_total{k=\"v # } x\"} 3
# HELP a_up Up.
# TYPE a_up gauge
a_up 1
# HELP a_build_info Build.
# TYPE a_build_info gauge
a_build_info{version=\"1\"} 1
# HELP a_odd Odd.
# TYPE a_odd untyped
a_odd 2
# HELP a_d_seconds Duration.
# TYPE a_d_seconds histogram
a_d_seconds_sum 0.5
a_d_seconds_count 1
a_d_seconds_bucket{le=\"+Inf\"} 1
";
        assert_eq!(to_prometheus_text(openmetrics).unwrap(), expected);
    }
}
