//! Upstream trouble: slow, failing, or our own credentials wrong. Uncached
//! tokens get 503 in bounded time, cached ones keep working, a foreign token
//! is the caller's 401 while a wrong secret is the server's 503.

use std::time::{Duration, Instant};

use crate::support::*;
use actix_accountkit::config::Config;
use actix_accountkit::AccountKit;
use actix_accountkit::VerifiedAccount;
use actix_web::{web, App, HttpResponse};
use serde_json::json;

async fn me(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().body(account.id().to_owned())
}

fn app(kit: &AccountKit) -> Served {
    let kit = kit.clone();
    serve!(move || App::new()
        .wrap(kit.auth().clone())
        .route("/me", web::get().to(me)))
}

#[actix_web::test]
async fn slow_upstream_is_503_in_bounded_time_and_cached_tokens_still_pass() {
    let emu = emulator();
    let kit = kit(&emu); // timeout 800 ms, timeouts are not retried
    let app = app(&kit);
    let cached = login(&emu, "+15551112222").await;
    let cold = login(&emu, "+15551113333").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&cached.token))
            .await
            .status(),
        200
    );

    fault(&emu, json!({"latency_ms": 5_000})).await;
    let started = Instant::now();
    let res = get_with(&app.url("/me"), Some(&cold.token)).await;
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert!(
        took < Duration::from_millis(800 + 1_500),
        "503 after {took:?}"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    assert_eq!(
        get_with(&app.url("/me"), Some(&cached.token))
            .await
            .status(),
        200
    );

    // Recovery without a restart: the outage was not cached.
    fault(&emu, json!({})).await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&cold.token)).await.status(),
        200
    );
}

#[actix_web::test]
async fn failing_upstream_is_503_never_500() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app(&kit);
    let cached = login(&emu, "+15551114444").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&cached.token))
            .await
            .status(),
        200
    );
    for (status, body) in [
        (500, None),
        (502, Some("<html>bad gateway</html>")),
        (503, None),
        (429, None),
        (200, Some("not json")),
        (200, Some("{\"unexpected\": true}")),
    ] {
        let mut spec = json!({"status": status});
        if let Some(body) = body {
            spec["body"] = json!(body);
        }
        fault(&emu, spec).await;
        let res = get_with(&app.url("/me"), Some("EMAWcoldtoken0001")).await;
        assert_eq!(res.status(), 503, "upstream {status} {body:?}");
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(
            get_with(&app.url("/me"), Some(&cached.token))
                .await
                .status(),
            200
        );
    }
}

#[actix_web::test]
async fn retries_are_bounded() {
    let emu = emulator();
    let kit = kit(&emu); // max_retries = 1
    let app = app(&kit);
    fault(&emu, json!({"status": 503, "body": "Service Unavailable"})).await;
    let res = get_with(&app.url("/me"), Some("EMAWcoldtoken0002")).await;
    assert_eq!(res.status(), 503);
    assert_eq!(calls(&emu, "me").await, 2, "one attempt and one retry");
}

#[actix_web::test]
async fn wrong_secret_is_503_for_everyone_foreign_token_is_401() {
    let emu = emulator();
    let user = login(&emu, "+15551115555").await;
    let foreign = login_other_app(&emu, "+15551116666").await;

    // Right secret: a foreign token is the caller's fault, ours pass.
    let good = kit(&emu);
    let good_app = app(&good);
    assert_eq!(
        get_with(&good_app.url("/me"), Some(&foreign.token))
            .await
            .status(),
        401
    );
    assert_eq!(
        get_with(&good_app.url("/me"), Some(&user.token))
            .await
            .status(),
        200
    );

    // Wrong secret (e.g. the Facebook app secret): every request is 503,
    // not once but for every request, and nothing is cached.
    let bad = AccountKit::new(
        Config::builder(APP_ID, "the-facebook-app-secret-not-account-kits")
            .base_url(emu.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let bad_app = app(&bad);
    for token in [&user.token, &foreign.token, &user.token] {
        let res = get_with(&bad_app.url("/me"), Some(token)).await;
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"));
    }
    assert_eq!(
        bad.cache().stats().entries + bad.cache().stats().negative_entries,
        0
    );
}

#[actix_web::test]
async fn proof_required_but_not_configured_is_misconfiguration() {
    let emu = emulator();
    let user = login(&emu, "+15551117777").await;
    let kit =
        AccountKit::new(config(&emu).require_appsecret_proof(false).build().unwrap()).unwrap();
    let app = app(&kit);
    assert_eq!(
        get_with(&app.url("/me"), Some(&user.token)).await.status(),
        503
    );
}

#[actix_web::test]
async fn connection_refused_is_503() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app(&kit);
    let cached = login(&emu, "+15551118888").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&cached.token))
            .await
            .status(),
        200
    );
    emu.stop();
    let res = get_with(&app.url("/me"), Some("EMAWcoldtoken0003")).await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        get_with(&app.url("/me"), Some(&cached.token))
            .await
            .status(),
        200
    );
    emu.restart().unwrap();
    let fresh = login(&emu, "+15551119999").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&fresh.token)).await.status(),
        200
    );
}

/// Issue 10 (suspected, confirmed): after the app secret is rotated at
/// Account Kit, a "credentials good" verdict from before the rotation must
/// not turn valid users' refused proofs into a cached "wrong app" 401.
#[actix_web::test]
async fn a_rotated_secret_is_the_servers_503_not_the_users_401() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app(&kit);
    // A foreign token makes the verifier check our credentials: good.
    let foreign = login_other_app(&emu, "+15557770001").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&foreign.token))
            .await
            .status(),
        401
    );

    // The secret is reset in the dashboard; this server still has the old one.
    let rotate = |secret: &'static str| {
        let url = format!("{}/_emulator/apps/{APP_ID}/secret", emu.base_url());
        async move {
            let res = http()
                .post(url)
                .json(&json!({ "secret": secret }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    rotate("the-new-account-kit-app-secret").await;
    let user = login(&emu, "+15557770002").await;
    for _ in 0..2 {
        let res = get_with(&app.url("/me"), Some(&user.token)).await;
        assert_eq!(res.status(), 503, "the server's fault, not the user's");
    }
    assert_eq!(
        kit.cache().stats().negative_entries,
        1,
        "only the foreign token"
    );

    // Once the server has the right secret again, the user passes at once:
    // nothing was cached against them.
    rotate(APP_SECRET).await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&user.token)).await.status(),
        200
    );
}
