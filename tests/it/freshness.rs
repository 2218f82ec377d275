//! Freshness per route (`AccountKitAuth::max_age`): a token logged out at
//! Account Kit by someone else (another service, a script) is refused on a
//! route with a max age once its cached verification is older than that,
//! while routes without one may still serve it from the cache.

use std::time::{Duration, Instant};

use actix_accountkit::{AccountKit, VerifiedAccount};
use actix_web::{web, App, HttpResponse};

use crate::support::*;

/// The demo's routes: `/me`, and `/me/fresh` with a max age of one second;
/// `/me/now` with a max age of zero; `/scoped/now`, a route with a max age
/// of zero inside a scope protected without one; `/extracted/now`, no
/// middleware, the extractor alone with a max-age variant as app data.
fn app(kit: &AccountKit) -> Served {
    let auth = kit.auth().clone();
    serve!(move || {
        let fresh = auth.max_age(Duration::from_secs(1));
        let now = auth.max_age(Duration::ZERO);
        App::new()
            .app_data(auth.clone())
            .service(web::resource("/me").wrap(auth.clone()).to(me))
            .service(web::resource("/me/fresh").wrap(fresh).to(me))
            .service(web::resource("/me/now").wrap(now.clone()).to(me))
            .service(
                web::scope("/scoped")
                    .wrap(auth.clone())
                    .service(web::resource("/now").wrap(now.clone()).to(me)),
            )
            .service(web::resource("/extracted/now").app_data(now).to(
                |account: VerifiedAccount| async move {
                    HttpResponse::Ok().body(account.id().to_owned())
                },
            ))
    })
}

async fn status(app: &Served, path: &str, token: &str) -> u16 {
    get_with(&app.url(path), Some(token))
        .await
        .status()
        .as_u16()
}

#[actix_web::test]
async fn a_token_logged_out_at_account_kit_is_refused_on_the_fresh_route_after_a_second() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app(&kit);
    let user = login(&emu, "+15550001111").await;
    assert_eq!(status(&app, "/me", &user.token).await, 200);
    assert_eq!(status(&app, "/me/fresh", &user.token).await, 200);
    let me_calls = calls(&emu, "me").await;
    assert_eq!(
        me_calls, 1,
        "/me/fresh within the second: the cache's answer"
    );

    logout_at_account_kit(&emu, &user.token).await;
    // The cache has not heard of it: `/me` serves the cached verification.
    assert_eq!(status(&app, "/me", &user.token).await, 200);

    // `/me/fresh` refuses it once the verification is a second old. Polled,
    // not timed: each answer is either the cache's (< 1 s) or Account Kit's.
    let logged_out_at = Instant::now();
    let refused = loop {
        let code = status(&app, "/me/fresh", &user.token).await;
        if code == 401 {
            break logged_out_at.elapsed();
        }
        assert_eq!(code, 200);
        assert!(
            logged_out_at.elapsed() < Duration::from_secs(20),
            "/me/fresh still serves a token logged out at Account Kit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("/me/fresh refused the logged-out token {refused:?} after the logout");
    assert_eq!(
        calls(&emu, "me").await,
        me_calls + 1,
        "one upstream verification, when the cached one grew too old"
    );
    // What Account Kit answered is now what the cache knows, for every route.
    assert_eq!(status(&app, "/me", &user.token).await, 401);
    let stats = kit.cache().stats();
    assert!(stats.too_old >= 1, "{stats:?}");
}

#[actix_web::test]
async fn a_max_age_holds_for_the_middleware_nested_scopes_and_the_extractor() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app(&kit);
    for path in ["/me/now", "/scoped/now", "/extracted/now"] {
        let user = login(&emu, "+15550002222").await;
        assert_eq!(status(&app, "/me", &user.token).await, 200, "{path}");
        let before = calls(&emu, "me").await;
        // Max age zero: verified upstream on every request, however fresh
        // the cache (and, for the scope, the outer middleware's check).
        assert_eq!(status(&app, path, &user.token).await, 200, "{path}");
        assert_eq!(calls(&emu, "me").await, before + 1, "{path}");

        logout_at_account_kit(&emu, &user.token).await;
        assert_eq!(status(&app, path, &user.token).await, 401, "{path}");
        assert_eq!(status(&app, "/me", &user.token).await, 401, "{path}");
    }
}

#[actix_web::test]
async fn fresh_requests_for_one_token_make_one_upstream_call() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app(&kit);
    let user = login(&emu, "+15550003333").await;
    assert_eq!(status(&app, "/me", &user.token).await, 200);
    // Let the cached verification grow older than `/me/fresh`'s second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fault(&emu, serde_json::json!({"latency_ms": 300, "times": 1})).await;
    let before = calls(&emu, "me").await;
    let all =
        futures::future::join_all((0..8).map(|_| status(&app, "/me/fresh", &user.token))).await;
    assert!(all.iter().all(|&code| code == 200), "{all:?}");
    // The first request's flight (300 ms of injected latency) is joined by
    // the others, or its fresh answer serves them from the cache.
    assert_eq!(calls(&emu, "me").await, before + 1);
    let stats = kit.cache().stats();
    // Each request found the cached verification too old, or joined the
    // flight, or was served the fresh answer.
    assert_eq!(stats.too_old + stats.hits, 8, "{stats:?}");
}

/// The same through the demo, run as a child process against this test's
/// emulator: `/me/fresh` is `/me` with a max age of one second.
#[actix_web::test]
async fn the_demo_refuses_on_me_fresh_a_token_logged_out_at_account_kit() {
    use crate::support::process::{demo, SERVING};
    let emu = emulator();
    let host = emu.addr().to_string();
    let mut demo = demo(&[
        ("ACCOUNTKIT_EMULATOR_HOST", &host),
        ("ACCOUNTKIT_APP_ID", APP_ID),
        ("ACCOUNTKIT_APP_SECRET", APP_SECRET),
    ]);
    let Some(api) = demo.line_starting_with(SERVING) else {
        panic!("the demo did not start:\n{}", demo.wait().output());
    };
    let user = login(&emu, "+15550004444").await;
    let get = |path: &'static str| {
        let url = format!("{api}{path}");
        let token = user.token.clone();
        async move { get_with(&url, Some(&token)).await.status().as_u16() }
    };
    assert_eq!(get("/me").await, 200);
    assert_eq!(get("/me/fresh").await, 200);
    logout_at_account_kit(&emu, &user.token).await;
    assert_eq!(get("/me").await, 200, "the cache has not heard of it");
    let logged_out_at = Instant::now();
    while get("/me/fresh").await != 401 {
        assert!(
            logged_out_at.elapsed() < Duration::from_secs(20),
            "the demo's /me/fresh still serves a token logged out at Account Kit:\n{}",
            demo.stdout_so_far()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the demo's /me/fresh refused it {:?} after the logout",
        logged_out_at.elapsed()
    );
    let out = demo.kill();
    assert!(!out.output().contains(APP_SECRET), "the secret was printed");
}
