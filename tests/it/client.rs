//! Every Graph client call over real HTTP against the emulator: success and
//! each failure the document and the facts file describe.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::*;
use actix_accountkit::client::GraphClient;
use actix_accountkit::config::{Config, RetryPolicy};
use actix_accountkit::Error;
use futures::TryStreamExt;
use serde_json::json;

fn client(emu: &actix_accountkit::emulator::Emulator) -> GraphClient {
    GraphClient::new(config(emu).build().unwrap()).unwrap()
}

#[actix_web::test]
async fn me_phone_and_email() {
    let emu = emulator();
    let c = client(&emu);
    let phone = login(&emu, "+5511973357095").await;
    let a = c.me(&phone.token).await.unwrap();
    assert_eq!(a.id, phone.account_id);
    let p = a.phone.unwrap();
    assert_eq!(
        (
            p.number.as_str(),
            p.country_prefix.as_str(),
            p.national_number.as_str()
        ),
        ("+5511973357095", "55", "11973357095")
    );
    assert_eq!(a.application.unwrap().id, APP_ID);

    let email = login_in(&emu, json!({"email": "test@example.com"})).await;
    let a = c.me(&email.token).await.unwrap();
    assert_eq!(a.email.unwrap().address, "test@example.com");
    assert!(a.phone.is_none());
}

#[actix_web::test]
async fn me_failures() {
    let emu = emulator();
    let c = client(&emu);
    let e = c.me("EMAWnotatoken").await.unwrap_err();
    assert!(e.is_invalid_token(), "{e}");
    let g = e.graph().unwrap();
    assert_eq!((g.status, g.code), (400, 190));
    assert!(g.fbtrace_id.is_some());

    // Wrong secret → the proof is refused with code 100.
    let user = login(&emu, "+8617512097915").await;
    let wrong = GraphClient::new(
        Config::builder(APP_ID, "wrong-secret")
            .base_url(emu.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = wrong.me(&user.token).await.unwrap_err();
    assert!(e.is_invalid_parameter(), "{e}");
    // No proof at all, while the app requires one: code 100 too.
    let no_proof =
        GraphClient::new(config(&emu).require_appsecret_proof(false).build().unwrap()).unwrap();
    assert!(no_proof
        .me(&user.token)
        .await
        .unwrap_err()
        .is_invalid_parameter());
}

#[actix_web::test]
async fn old_versions_have_no_application() {
    let emu = emulator();
    let user = login(&emu, "+15550002222").await;
    let c = GraphClient::new(config(&emu).api_version("v1.0").build().unwrap()).unwrap();
    let a = c.me(&user.token).await.unwrap();
    assert!(a.application.is_none());
}

#[actix_web::test]
async fn exchange_code_success_reuse_and_garbage() {
    let emu = emulator();
    let c = client(&emu);
    let user = login(&emu, "+15550003333").await;
    let x = c.exchange_code(&user.code).await.unwrap();
    assert_eq!(x.id, user.account_id);
    assert!(x.access_token.expose_secret().starts_with("EMAW"));
    assert_eq!(x.token_refresh_interval_sec, 2_592_000);
    let e = c.exchange_code(&user.code).await.unwrap_err();
    assert!(e.is_invalid_code(), "{e}");
    assert!(e.to_string().contains("used"), "{e}");
    let e = c.exchange_code("AQgarbage").await.unwrap_err();
    assert!(e.is_invalid_code());
    assert!(!e.to_string().contains("AQgarbage"));
}

/// A wrong secret is code 2, which is also an outage: retried, but only
/// `max_retries` times, by reads and by the exchange alike (a code-2 answer
/// shows the exchange was not made).
#[actix_web::test]
async fn wrong_app_credentials_are_code_2_retried_a_bounded_number_of_times() {
    let emu = emulator();
    let user = login(&emu, "+15550004444").await;
    let c = GraphClient::new(
        Config::builder(APP_ID, "wrong-secret")
            .base_url(emu.base_url())
            .retry_policy(RetryPolicy {
                max_retries: 2,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            })
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = c.exchange_code(&user.code).await.unwrap_err();
    assert!(e.is_app_misconfigured(), "{e}");
    let g = e.graph().unwrap();
    assert_eq!(g.status, 500);
    assert!(g.is_transient);
    assert_eq!(calls(&emu, "access_token").await, 3);
    let e = c.accounts_page(10, None).await.unwrap_err();
    assert!(e.is_app_misconfigured());
    assert_eq!(calls(&emu, "accounts").await, 3, "one attempt, two retries");
    assert!(!format!("{e} {e:?}").contains("wrong-secret"));
    // The service itself is up: it answers a call without credentials.
    c.check_service().await.expect("the emulator is up");
    fault(&emu, json!({"code2": "transient"})).await;
    let e = c.check_service().await.unwrap_err();
    assert!(e.is_app_misconfigured(), "{e}");
}

#[actix_web::test]
async fn logout_invalidate_delete() {
    let emu = emulator();
    let c = client(&emu);
    let a = login(&emu, "+15550005555").await;
    c.logout(&a.token).await.unwrap();
    assert!(c.me(&a.token).await.unwrap_err().is_invalid_token());
    assert!(c.logout(&a.token).await.unwrap_err().is_invalid_token());

    let b1 = login(&emu, "+15550006666").await;
    let b2 = login(&emu, "+15550006666").await;
    c.invalidate_all_tokens(&b1.account_id).await.unwrap();
    assert!(c.me(&b1.token).await.unwrap_err().is_invalid_token());
    assert!(c.me(&b2.token).await.unwrap_err().is_invalid_token());

    let d = login(&emu, "+15550007777").await;
    c.delete_account(&d.account_id).await.unwrap();
    assert!(c.me(&d.token).await.unwrap_err().is_invalid_token());
    assert!(c.delete_account(&d.account_id).await.is_err());

    // Refused before any request.
    assert!(matches!(
        c.delete_account("../me").await,
        Err(Error::InvalidAccountId)
    ));
    assert!(matches!(
        c.invalidate_all_tokens("").await,
        Err(Error::InvalidAccountId)
    ));
}

#[actix_web::test]
async fn accounts_pages_and_stream() {
    let emu = actix_accountkit::emulator::Emulator::builder()
        .app(
            actix_accountkit::emulator::EmulatorApp::new(APP_ID, APP_SECRET)
                .require_appsecret_proof(true),
        )
        .seed_accounts(2_500)
        .build()
        .unwrap();
    let c = client(&emu);
    let first = c.accounts_page(1000, None).await.unwrap();
    assert_eq!(first.data.len(), 1000);
    assert!(first.has_next());
    assert!(first.paging.as_ref().unwrap().previous.is_none());

    for limit in [1000, 7] {
        let all: Vec<_> = c.accounts(limit).try_collect().await.unwrap();
        assert_eq!(all.len(), 2_500, "limit {limit}");
        let ids: HashSet<_> = all.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids.len(), 2_500);
        assert!(all.iter().any(|a| a.email.is_some()) && all.iter().any(|a| a.phone.is_some()));
    }
    // Resume after a cursor.
    let rest: Vec<_> = c
        .account_pages(1000, first.after_cursor().map(str::to_owned))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|p| p.data.len()).sum::<usize>(), 1_500);

    let before = calls(&emu, "accounts").await;
    for bad in [0, 1001] {
        assert!(matches!(
            c.accounts_page(bad, None).await,
            Err(Error::InvalidLimit { .. })
        ));
        let streamed: Result<Vec<_>, _> = c.accounts(bad).try_collect().await;
        assert!(matches!(streamed, Err(Error::InvalidLimit { .. })));
    }
    assert_eq!(
        calls(&emu, "accounts").await,
        before,
        "no request for a bad limit"
    );
}

#[actix_web::test]
async fn rate_limit_and_5xx_reads_are_retried_then_reported() {
    let emu = emulator();
    let c = client(&emu); // one retry
    fault(&emu, json!({"status": 429, "times": 1})).await;
    c.accounts_page(5, None).await.unwrap();
    assert_eq!(calls(&emu, "accounts").await, 2);
    fault(&emu, json!({"status": 502, "body": "bad gateway"})).await;
    let e = c.accounts_page(5, None).await.unwrap_err();
    assert!(matches!(e, Error::Decode { status: 502, .. }), "{e:?}");
    assert_eq!(calls(&emu, "accounts").await, 4);
    // A write is not sent again after a proxy's 503: it may have been
    // carried out (code 2 is another matter: see code2.rs).
    fault(&emu, json!({"status": 503, "body": "unavailable"})).await;
    let a = login(&emu, "+15550008888").await;
    assert!(c.logout(&a.token).await.is_err());
    assert_eq!(calls(&emu, "logout").await, 1);
}

#[actix_web::test]
async fn timeouts_and_refused_connections() {
    let emu = emulator();
    let c = client(&emu); // 800 ms
    fault(&emu, json!({"latency_ms": 3000, "times": 1})).await;
    let e = c.accounts_page(1, None).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    emu.stop();
    let e = c.accounts_page(1, None).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(APP_SECRET));
}

#[actix_web::test]
async fn an_answer_from_where_a_redirect_led_is_refused() {
    // The configured endpoint redirects every call to the emulator; a
    // client of the caller's own follows redirects (reqwest's default).
    let emu = emulator();
    let target = emu.base_url().trim_end_matches('/').to_owned();
    let redirector = serve!(move || {
        let target = target.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest| {
                let location = format!("{target}{}", req.uri());
                async move {
                    actix_web::HttpResponse::TemporaryRedirect()
                        .insert_header(("location", location))
                        .finish()
                }
            },
        ))
    });
    let user = login(&emu, "+15552220009").await;
    let config = Config::builder(APP_ID, APP_SECRET)
        .base_url(redirector.url("/"))
        .build()
        .unwrap();
    #[allow(deprecated)]
    let following = GraphClient::with_http_client(config.clone(), reqwest::Client::new()).unwrap();
    let err = following.me(&user.token).await.unwrap_err();
    assert!(matches!(err, Error::Redirected), "{err:?}");
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains(&user.token));
    // The emulator did answer, once (not retried): the refusal is ours.
    assert_eq!(calls(&emu, "me").await, 1);

    // The crate's clients do not follow: the 307 is an error, nothing
    // reaches where it points. A builder of the caller's own is no
    // exception (its default would follow).
    let own = GraphClient::new(config.clone()).unwrap();
    let built = GraphClient::with_http_client_builder(config, reqwest::Client::builder()).unwrap();
    for client in [own, built] {
        let err = client.me(&user.token).await.unwrap_err();
        assert!(matches!(err, Error::Decode { status: 307, .. }), "{err:?}");
    }
    assert_eq!(calls(&emu, "me").await, 1);
}
