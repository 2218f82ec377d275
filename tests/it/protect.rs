//! Protecting routes: the middleware, the extractors, the cache in front of
//! the emulator, over real HTTP.

use crate::support::*;
use actix_accountkit::token::TokenSource;
use actix_accountkit::AccountKit;
use actix_accountkit::{MaybeAccount, VerifiedAccount};
use actix_web::{web, App, HttpResponse};
use serde_json::Value;

async fn me(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().json(account.account())
}

async fn maybe(MaybeAccount(account): MaybeAccount) -> HttpResponse {
    HttpResponse::Ok().body(account.map_or("anonymous".to_owned(), |a| a.id().to_owned()))
}

fn app_for(kit: &AccountKit) -> Served {
    let kit = kit.clone();
    serve!(move || {
        App::new()
            .app_data(kit.auth().clone())
            .route("/public", web::get().to(|| async { "public" }))
            .route("/optional", web::get().to(maybe))
            .route("/signature", web::get().to(me))
            .service(
                web::scope("/api")
                    .wrap(kit.auth().clone())
                    .route("/me", web::get().to(me)),
            )
    })
}

#[actix_web::test]
async fn no_token_is_a_bare_challenge_and_a_good_token_passes() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let user = login(&emu, "+15551234567").await;

    let res = get_with(&app.url("/api/me"), None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"accountkit\""
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(body["error_description"].is_string());

    let res = get_with(&app.url("/api/me"), Some(&user.token)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], user.account_id.as_str());
    assert_eq!(body["phone"]["number"], "+15551234567");
    assert_eq!(body["phone"]["country_prefix"], "1");
    assert_eq!(body["application"]["id"], APP_ID);

    // Scheme matched case-insensitively.
    let res = http()
        .get(app.url("/api/me"))
        .header("authorization", format!("bEARER {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn fifty_requests_one_upstream_call() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let user = login(&emu, "+15551234568").await;
    for _ in 0..50 {
        assert_eq!(
            get_with(&app.url("/api/me"), Some(&user.token))
                .await
                .status(),
            200
        );
    }
    assert_eq!(calls(&emu, "me").await, 1);
    let stats = kit.cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.upstream_calls), (49, 1, 1));
}

#[actix_web::test]
async fn email_accounts_pass_too() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let user = login_in(&emu, serde_json::json!({"email": "ada@example.com"})).await;
    let res = get_with(&app.url("/api/me"), Some(&user.token)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"]["address"], "ada@example.com");
    assert!(body.get("phone").is_none());
}

#[actix_web::test]
async fn another_apps_token_is_refused() {
    for require_proof in [true, false] {
        let emu = emulator_with(require_proof);
        let kit = kit(&emu);
        let app = app_for(&kit);
        let foreign = login_other_app(&emu, "+15551230000").await;
        let res = get_with(&app.url("/api/me"), Some(&foreign.token)).await;
        assert_eq!(res.status(), 401, "require_proof={require_proof}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        // Refused for that request alone: our own users still pass.
        let user = login(&emu, "+15551230001").await;
        assert_eq!(
            get_with(&app.url("/api/me"), Some(&user.token))
                .await
                .status(),
            200
        );
        // And the refusal is cached: no second upstream call.
        let before = calls(&emu, "me").await;
        assert_eq!(
            get_with(&app.url("/api/me"), Some(&foreign.token))
                .await
                .status(),
            401
        );
        assert_eq!(calls(&emu, "me").await, before);
    }
}

#[actix_web::test]
async fn malformed_and_oversized_tokens_cost_no_upstream_call() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let oversized = "A".repeat(4097);
    for bad in [
        "Bearer",
        "Bearer tok€n",
        "Bearer <script>",
        &format!("Bearer {oversized}"),
    ] {
        let res = http()
            .get(app.url("/api/me"))
            .header("authorization", bad.as_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{bad:.20}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    assert_eq!(calls(&emu, "me").await, 0);
    assert_eq!(kit.cache().stats().lookups(), 0);
}

/// RFC 6750 §3.1: a request that "uses more than one method for including
/// an access token" or repeats a parameter is `invalid_request`, a 400.
#[actix_web::test]
async fn more_than_one_token_is_invalid_request() {
    let emu = emulator();
    let kit = AccountKit::builder(config(&emu).build().unwrap())
        .auth(|auth| {
            auth.token_sources([
                TokenSource::BearerHeader,
                TokenSource::query("access_token"),
                TokenSource::cookie("ak"),
            ])
        })
        .build()
        .unwrap();
    let app = app_for(&kit);
    let good = login(&emu, "+15556660001").await.token;
    let url = app.url("/api/me");
    let two_headers = http()
        .get(&url)
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"));
    let two_words = http()
        .get(&url)
        .header("authorization", format!("Bearer {good} {good}"));
    let header_and_query = http()
        .get(format!("{url}?access_token={good}"))
        .header("authorization", format!("Bearer {good}"));
    let header_and_cookie = http()
        .get(&url)
        .header("authorization", format!("Bearer {good}"))
        .header("cookie", format!("ak={good}"));
    let repeated_parameter = http().get(format!("{url}?access_token={good}&access_token={good}"));
    let repeated_cookie = http()
        .get(&url)
        .header("cookie", format!("ak={good}; ak={good}"));
    for (what, request) in [
        ("two headers", two_headers),
        ("two words", two_words),
        ("header and query", header_and_query),
        ("header and cookie", header_and_cookie),
        ("repeated parameter", repeated_parameter),
        ("repeated cookie", repeated_cookie),
    ] {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 400, "{what}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{what}: {challenge}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
    }
    assert_eq!(
        calls(&emu, "me").await,
        0,
        "refused before any upstream call"
    );
    // One source at a time still passes.
    assert_eq!(get_with(&url, Some(&good)).await.status(), 200);
    let res = http()
        .get(format!("{url}?access_token={good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn a_refused_token_is_invalid_token() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let res = get_with(&app.url("/api/me"), Some("EMAWnotarealtoken0000")).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"accountkit\", error=\"invalid_token\", error_description=\"the access token is invalid, expired or logged out\""
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[actix_web::test]
async fn hundred_concurrent_requests_one_cold_token_one_call() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let user = login(&emu, "+15551234569").await;
    // Slow the upstream down so that all requests arrive during the flight.
    fault(&emu, serde_json::json!({"latency_ms": 300, "times": 1})).await;
    let url = app.url("/api/me");
    let all = futures::future::join_all((0..100).map(|_| get_with(&url, Some(&user.token)))).await;
    assert!(all.iter().all(|r| r.status() == 200));
    assert_eq!(calls(&emu, "me").await, 1);
    let stats = kit.cache().stats();
    assert_eq!(stats.upstream_calls, 1);
    assert_eq!(stats.hits + stats.misses, 100);
}

#[actix_web::test]
async fn bogus_flood_does_not_evict_a_verified_account() {
    let emu = emulator();
    // 200 upstream verifications at a time: on a loaded 2-core machine some
    // take longer than the fixtures' 800 ms timeout, which would answer 503.
    let config = config(&emu).timeout(std::time::Duration::from_secs(10));
    let kit = AccountKit::builder(config.build().unwrap())
        .cache(
            actix_accountkit::cache::CacheConfig::builder()
                .capacity(100)
                .negative_capacity(100)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let app = app_for(&kit);
    let user = login(&emu, "+15551234570").await;
    assert_eq!(
        get_with(&app.url("/api/me"), Some(&user.token))
            .await
            .status(),
        200
    );
    let url = app.url("/api/me");
    for chunk in (0..10_000).collect::<Vec<_>>().chunks(200) {
        let reqs = chunk.iter().map(|i| {
            let url = url.clone();
            async move {
                get_with(&url, Some(&format!("EMAWbogus{i:06}")))
                    .await
                    .status()
            }
        });
        for status in futures::future::join_all(reqs).await {
            assert_eq!(status, 401);
        }
    }
    let before = calls(&emu, "me").await;
    assert_eq!(
        get_with(&app.url("/api/me"), Some(&user.token))
            .await
            .status(),
        200
    );
    assert_eq!(
        calls(&emu, "me").await,
        before,
        "the verified account stayed cached"
    );
    assert!(kit.cache().stats().negative_entries <= 128);
}

#[actix_web::test]
async fn optional_extractor_none_only_without_a_token() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let user = login(&emu, "+15551234571").await;

    let res = get_with(&app.url("/optional"), None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "anonymous");

    let res = get_with(&app.url("/optional"), Some(&user.token)).await;
    assert_eq!(res.text().await.unwrap(), user.account_id);

    let res = get_with(&app.url("/optional"), Some("EMAWrefusedtoken")).await;
    assert_eq!(res.status(), 401);

    fault(&emu, serde_json::json!({"status": 503})).await;
    let res = get_with(&app.url("/optional"), Some("EMAWuncachedtoken")).await;
    assert_eq!(res.status(), 503, "an outage is not an anonymous caller");
    assert!(res.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn signature_alone_protects_a_handler() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = app_for(&kit);
    let user = login(&emu, "+15551234572").await;
    assert_eq!(get_with(&app.url("/signature"), None).await.status(), 401);
    assert_eq!(
        get_with(&app.url("/signature"), Some(&user.token))
            .await
            .status(),
        200
    );
    assert_eq!(get_with(&app.url("/public"), None).await.status(), 200);
}

#[actix_web::test]
async fn missing_app_data_is_a_500_that_says_what_to_register() {
    let app = serve!(|| App::new().route("/signature", web::get().to(me)));
    let res = get_with(&app.url("/signature"), Some("EMAWwhatever")).await;
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.unwrap();
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("app_data"));
}

#[actix_web::test]
async fn error_handler_reshapes_refusals() {
    let emu = emulator();
    let kit = AccountKit::builder(config(&emu).build().unwrap())
        .auth(|auth| {
            auth.realm("shop").error_handler(|_req, refusal, default| {
                if refusal.is_client_error() {
                    let mut response = HttpResponse::Unauthorized().body("please log in");
                    if let Some(challenge) = default.headers().get("www-authenticate") {
                        response
                            .headers_mut()
                            .insert(actix_web::http::header::WWW_AUTHENTICATE, challenge.clone());
                    }
                    response
                } else {
                    default
                }
            })
        })
        .build()
        .unwrap();
    let app = app_for(&kit);
    let res = get_with(&app.url("/api/me"), None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"shop\"");
    assert_eq!(res.text().await.unwrap(), "please log in");
}
