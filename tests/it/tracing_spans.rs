//! Tracing over real HTTP, behind tracing-actix-web's `TracingLogger`: an
//! `accountkit.verify` span (path, outcome, upstream duration) for each
//! verification that leaves the cache and none for a cached answer, the
//! account id as `enduser.id` on the request's root span (middleware and
//! extractor), and no token in any span field.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use actix_accountkit::hash::TokenHash;
use actix_accountkit::shared::{Revocation, RevocationSink, SharedLookup, SharedStats, SharedTier};
use actix_accountkit::verify::Verification;
use actix_accountkit::AccountKit;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, App};
use futures::future::{BoxFuture, FutureExt};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Span, Subscriber};
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, TracingLogger};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// tracing-actix-web's root span with `enduser.id` declared, as the README
/// shows.
pub struct WithEnduser;

impl RootSpanBuilder for WithEnduser {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(request, enduser.id = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// A shared tier in memory: what a second instance would see.
#[derive(Clone, Debug, Default)]
pub struct MemoryTier {
    entries: Arc<Mutex<HashMap<TokenHash, (Verification, Duration)>>>,
}

impl SharedTier for MemoryTier {
    fn attach(&self, _sink: RevocationSink) {}
    fn get<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, SharedLookup> {
        let found = self.entries.lock().unwrap().get(key).cloned();
        let lookup = match found {
            Some((answer, remaining)) => SharedLookup::Found { answer, remaining },
            None => SharedLookup::Missing { ticket: 0 },
        };
        futures::future::ready(lookup).boxed()
    }
    fn store<'a>(
        &'a self,
        key: &'a TokenHash,
        _ticket: u64,
        answer: Option<&'a Verification>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        if let Some(answer) = answer {
            self.entries
                .lock()
                .unwrap()
                .insert(*key, (answer.clone(), ttl));
        }
        futures::future::ready(()).boxed()
    }
    fn publish<'a>(&'a self, _revocation: &'a Revocation) -> BoxFuture<'a, ()> {
        futures::future::ready(()).boxed()
    }
    fn stats(&self) -> SharedStats {
        let mut stats = SharedStats::default();
        stats.connected = true;
        stats
    }
}

/// A closed span: its name, its recorded fields, its parent's name.
#[derive(Clone, Debug)]
struct Closed {
    name: &'static str,
    fields: BTreeMap<String, String>,
    parent: Option<&'static str>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Keeps every span's fields and hands them over when it closes.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Closed>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
            self.0.lock().unwrap().push(Closed {
                name: span.name(),
                fields: fields.0,
                parent: span.parent().map(|p| p.name()),
            });
        }
    }
}

impl Spans {
    /// The spans closed since the last call, once `requests` root spans
    /// have closed (they close after their response is sent).
    async fn after(&self, requests: usize) -> Vec<Closed> {
        for _ in 0..2_000 {
            {
                let mut closed = self.0.lock().unwrap();
                if closed.iter().filter(|s| s.name == "HTTP request").count() >= requests {
                    return std::mem::take(&mut *closed);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{requests} request spans never closed: {:?}", self.0.lock());
    }
}

fn verify_spans(spans: &[Closed]) -> Vec<&Closed> {
    spans
        .iter()
        .filter(|s| s.name == "accountkit.verify")
        .collect()
}

fn field<'a>(span: &'a Closed, name: &str) -> Option<&'a str> {
    span.fields.get(name).map(String::as_str)
}

/// What one request left in the traces.
#[derive(Debug)]
struct Seen {
    status: u16,
    /// `(path, outcome)` of its `accountkit.verify` spans.
    verify: Vec<(String, String)>,
    /// Its `upstream_duration_ms`, when it has one span.
    upstream_ms: Option<f64>,
    /// Its root span's `enduser.id`.
    enduser: Option<String>,
}

impl Seen {
    /// Reads `closed`, the spans of one request.
    fn of(status: u16, closed: &[Closed]) -> Self {
        let verify = verify_spans(closed);
        for span in &verify {
            assert_eq!(span.parent, Some("HTTP request"), "{closed:#?}");
        }
        let roots: Vec<_> = closed.iter().filter(|s| s.name == "HTTP request").collect();
        assert_eq!(roots.len(), 1, "{closed:#?}");
        Seen {
            status,
            upstream_ms: match verify[..] {
                [span] => field(span, "upstream_duration_ms").map(|ms| ms.parse().expect("ms")),
                _ => None,
            },
            verify: verify
                .iter()
                .map(|s| {
                    let text = |name| field(s, name).unwrap_or_default().to_owned();
                    (text("path"), text("outcome"))
                })
                .collect(),
            enduser: field(roots[0], "enduser.id").map(str::to_owned),
        }
    }

    fn verified(&self) -> Vec<(&str, &str)> {
        self.verify
            .iter()
            .map(|(p, o)| (p.as_str(), o.as_str()))
            .collect()
    }
}

#[test]
fn verifications_that_leave_the_cache_have_spans_and_requests_an_enduser() {
    // A global subscriber: alone in its process, as in secret_logs.
    in_own_process(
        "tracing_spans::verifications_that_leave_the_cache_have_spans_and_requests_an_enduser",
        || actix_web::rt::System::new().block_on(run()),
    );
}

async fn run() {
    let spans = Spans::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
        .expect("the only subscriber in this process");

    let emu = emulator();
    let tier = MemoryTier::default();
    // Long enough for the latency injected below: a slow answer, not a timeout.
    let slow_ok = || {
        config(&emu)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    };
    let a = AccountKit::builder(slow_ok())
        .shared_tier(tier.clone())
        .build()
        .unwrap();
    let b = AccountKit::builder(slow_ok())
        .shared_tier(tier)
        .build()
        .unwrap();
    let (ka, kb) = (a.clone(), b.clone());
    let app = serve!(move || {
        App::new()
            .wrap(TracingLogger::<WithEnduser>::new())
            .service(
                web::resource("/a/me")
                    .wrap(ka.auth().clone())
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/b/me")
                    .wrap(kb.auth().clone())
                    .route(web::get().to(me)),
            )
            // The extractor alone, with the auth as app data.
            .service(
                web::resource("/x/me")
                    .app_data(ka.auth().clone())
                    .route(web::get().to(me)),
            )
    });
    let get = |path: &str, token: &str| {
        let (url, token) = (app.url(path), token.to_owned());
        async move { get_with(&url, Some(&token)).await.status().as_u16() }
    };
    let first = login(&emu, "+15556660001").await;
    let second = login(&emu, "+15556660002").await;
    let third = login(&emu, "+15556660003").await;
    let bogus = "EMAWbogustokenzzzz";
    let mut seen = Vec::new();
    let mut one = async |path: &str, token: &str| {
        let status = get(path, token).await;
        let closed = spans.after(1).await;
        let one = Seen::of(status, &closed);
        seen.extend(closed);
        one
    };
    let (id1, id2) = (
        Some(first.account_id.clone()),
        Some(second.account_id.clone()),
    );

    // A miss: one span, under the request's, and the request's enduser.id.
    let miss = one("/a/me", &first.token).await;
    assert_eq!((miss.status, miss.verified()), (200, vec![("miss", "ok")]));
    assert!(miss.upstream_ms.is_some_and(|ms| ms >= 0.0), "{miss:?}");
    assert_eq!(miss.enduser, id1);
    // A hit: no span, and still the enduser.id.
    let hit = one("/a/me", &first.token).await;
    assert_eq!((hit.status, hit.verified()), (200, vec![]));
    assert_eq!(hit.enduser, id1);
    // Another instance: answered by the shared tier, no upstream call.
    let shared = one("/b/me", &first.token).await;
    assert_eq!(
        (shared.status, shared.verified()),
        (200, vec![("shared", "ok")])
    );
    assert_eq!((shared.upstream_ms, shared.enduser), (None, id1));
    // A refused token: its span says why, no enduser.id; then a cached
    // refusal: no span.
    let refused = one("/a/me", bogus).await;
    assert_eq!(
        (refused.status, refused.verified()),
        (401, vec![("miss", "invalid_token")])
    );
    assert_eq!(refused.enduser, None);
    let cached = one("/a/me", bogus).await;
    assert_eq!((cached.status, cached.verified()), (401, vec![]));
    // The extractor alone records the enduser.id too.
    let extracted = one("/x/me", &second.token).await;
    assert_eq!(
        (extracted.status, extracted.verified()),
        (200, vec![("miss", "ok")])
    );
    assert_eq!(extracted.enduser, id2);

    // Two requests for one token while Account Kit is slow: the second
    // joins the first one's verification, sent once it is under way.
    fault(&emu, json!({"latency_ms": 1500, "times": 1})).await;
    let before = calls(&emu, "me").await;
    let leader = actix_web::rt::spawn(get("/a/me", &third.token));
    while calls(&emu, "me").await == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get("/a/me", &third.token).await, 200);
    assert_eq!(leader.await.unwrap(), 200);
    let closed = spans.after(2).await;
    let mut paths: Vec<_> = verify_spans(&closed)
        .iter()
        .map(|s| (field(s, "path"), field(s, "outcome")))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [(Some("coalesced"), Some("ok")), (Some("miss"), Some("ok"))],
        "{closed:#?}"
    );
    seen.extend(closed);

    // Nothing secret in any span field.
    let mut secrets = vec![
        APP_SECRET.to_owned(),
        CLIENT_TOKEN.to_owned(),
        bogus.to_owned(),
    ];
    for user in [&first, &second, &third] {
        secrets.push(user.token.clone());
        secrets.push(user.code.clone());
        secrets.push(a.client().config().appsecret_proof(&user.token));
    }
    for span in &seen {
        for (name, value) in &span.fields {
            for secret in &secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "span {} field {name} holds a secret",
                    span.name
                );
            }
        }
    }
}
