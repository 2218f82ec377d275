//! Middleware overhead: one request through an actix-web test service, the
//! bare route against the same route wrapped in `AccountKitAuth` (cache hit).
//!
//! ```text
//! cargo bench --bench middleware
//! ```
//!
//! * `bare/no_header`: `GET /bare`, no `Authorization` header.
//! * `bare/with_header`: the same request carrying the bearer header, to an
//!   unprotected route: the request is the same as the protected one, so the
//!   difference with `protected` is the middleware alone.
//! * `protected`: `GET /protected` with the header; the handler is the same
//!   (it does not extract the account, so the route is the only difference).
//! * `protected_extract`: the handler also takes `VerifiedAccount` (reads
//!   what the middleware left in the extensions).
//!
//! One iteration builds the request (`TestRequest`), calls the service and
//! drops the response.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use actix_accountkit::AccountKitAuth;
use actix_accountkit::VerifiedAccount;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{test, web, App, HttpResponse};
use criterion::{criterion_group, criterion_main, Criterion};

use support::{day_cache, token};

async fn handler() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn handler_extract(account: VerifiedAccount) -> HttpResponse {
    black_box(account.id().len());
    HttpResponse::Ok().body("ok")
}

fn middleware(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let token = token(7);
    let bearer = format!("Bearer {token}");
    let cache = day_cache();
    let auth = AccountKitAuth::new(cache.clone());
    let app = system.block_on(test::init_service(
        App::new()
            // A scope like the protected ones, so that only the wrap differs.
            .service(web::scope("/bare").route("", web::get().to(handler)))
            .service(
                web::scope("/protected")
                    .wrap(auth.clone())
                    .route("", web::get().to(handler)),
            )
            .service(
                web::scope("/extract")
                    .wrap(auth)
                    .route("", web::get().to(handler_extract)),
            ),
    ));
    // Warm the cache, and check every route answers 200.
    system.block_on(async {
        for uri in ["/bare", "/protected", "/extract"] {
            let req = test::TestRequest::get()
                .uri(uri)
                .insert_header((AUTHORIZATION, bearer.as_str()))
                .to_request();
            let res = test::call_service(&app, req).await;
            assert!(res.status().is_success(), "{uri}: {}", res.status());
        }
    });
    let misses_before = cache.stats().misses;

    let run = |uri: &'static str, header: bool, iters: u64| -> Duration {
        system.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let mut req = test::TestRequest::get().uri(uri);
                if header {
                    req = req.insert_header((AUTHORIZATION, bearer.as_str()));
                }
                let res = test::call_service(&app, req.to_request()).await;
                black_box(res.status());
            }
            start.elapsed()
        })
    };

    let mut g = c.benchmark_group("middleware");
    g.bench_function("bare/no_header", |b| {
        b.iter_custom(|iters| run("/bare", false, iters))
    });
    g.bench_function("bare/with_header", |b| {
        b.iter_custom(|iters| run("/bare", true, iters))
    });
    g.bench_function("protected", |b| {
        b.iter_custom(|iters| run("/protected", true, iters))
    });
    g.bench_function("protected_extract", |b| {
        b.iter_custom(|iters| run("/extract", true, iters))
    });
    g.finish();
    assert_eq!(
        cache.stats().misses,
        misses_before,
        "every protected request was a hit"
    );
}

criterion_group!(benches, middleware);
criterion_main!(benches);
