//! Every log line, at TRACE level, from our crate, the emulator and the HTTP
//! stack (log records included), is free of the app secret, the client token,
//! user tokens, authorization codes and proofs; so is every span, with its
//! fields (`accountkit.verify`, and tracing-actix-web's request span with
//! `enduser.id`), logged when it opens, is entered, exits and closes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::*;
use crate::tracing_spans::WithEnduser;
use actix_accountkit::config::Config;
use actix_accountkit::AccountKit;
use actix_accountkit::VerifiedAccount;
use actix_web::{web, App, HttpResponse};
use futures::TryStreamExt;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn me(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().body(account.id().to_owned())
}

#[test]
fn nothing_secret_reaches_the_logs_at_trace_level() {
    // A global subscriber at TRACE: alone in its process, so that nothing
    // but this test logs into it.
    in_own_process(
        "secret_logs::nothing_secret_reaches_the_logs_at_trace_level",
        || actix_web::rt::System::new().block_on(capture()),
    );
}

async fn capture() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber in this test binary");

    let wrong_secret = "facebook-app-secret-not-the-account-kit-one";
    let emu = actix_accountkit::emulator::Emulator::builder()
        .app(
            actix_accountkit::emulator::EmulatorApp::new(APP_ID, APP_SECRET)
                .client_token(CLIENT_TOKEN)
                .require_appsecret_proof(true),
        )
        .app(
            actix_accountkit::emulator::EmulatorApp::new(OTHER_APP_ID, OTHER_APP_SECRET)
                .require_appsecret_proof(true),
        )
        .seed_accounts(30)
        .build()
        .unwrap();
    let good = kit(&emu);
    let bad = AccountKit::new(
        Config::builder(APP_ID, wrong_secret)
            .base_url(emu.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let (g, b) = (good.clone(), bad.clone());
    let app = serve!(move || {
        App::new()
            .wrap(tracing_actix_web::TracingLogger::<WithEnduser>::new())
            .service(
                web::scope("/good")
                    .wrap(g.auth().clone())
                    .route("/me", web::get().to(me)),
            )
            .service(
                web::scope("/bad")
                    .wrap(b.auth().clone())
                    .route("/me", web::get().to(me)),
            )
    });

    let user = login(&emu, "+15553330001").await;
    let second = login(&emu, "+15553330002").await;
    let foreign = login_other_app(&emu, "+15553330003").await;
    let exchanged = good.admin().exchange_code(&user.code).await.unwrap();
    let fresh = exchanged.access_token.expose_secret().to_owned();
    let mut secrets = vec![
        APP_SECRET.to_owned(),
        OTHER_APP_SECRET.to_owned(),
        CLIENT_TOKEN.to_owned(),
        wrong_secret.to_owned(),
        user.token.clone(),
        user.code.clone(),
        second.token.clone(),
        foreign.token.clone(),
        fresh.clone(),
    ];
    for token in [&user.token, &fresh, &second.token] {
        secrets.push(good.client().config().appsecret_proof(token));
    }

    for token in [
        &user.token,
        &user.token,
        &fresh,
        &foreign.token,
        &"EMAWbogus".to_owned(),
    ] {
        get_with(&app.url("/good/me"), Some(token)).await;
        get_with(&app.url("/bad/me"), Some(token)).await;
    }
    get_with(&app.url("/good/me"), Some("not a token")).await;
    fault(&emu, json!({"latency_ms": 1500, "times": 1})).await;
    assert_eq!(
        get_with(&app.url("/good/me"), Some(&second.token))
            .await
            .status(),
        503
    );
    fault(&emu, json!({"status": 400, "times": 1, "body": format!(
        r#"{{"error":{{"message":"Malformed access token {}","type":"OAuthException","code":190}}}}"#, second.token)})).await;
    get_with(&app.url("/good/me"), Some(&second.token)).await;
    let _ = good.admin().exchange_code(&user.code).await; // used twice
    let accounts: Vec<_> = good.admin().accounts(7).try_collect().await.unwrap();
    assert!(accounts.len() >= 30);
    let _ = bad.admin().accounts_page(5, None).await;
    good.admin().logout(&fresh).await.unwrap();
    good.admin()
        .invalidate_all_tokens(&second.account_id)
        .await
        .unwrap();
    good.admin().delete_account(&user.account_id).await.unwrap();
    emu.stop();
    let _ = good.client().me(&second.token).await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    eprintln!("captured {} log lines", text.lines().count());
    // The capture works and saw the interesting events...
    assert!(
        text.contains("Account Kit refused this server's credentials"),
        "{text}"
    );
    assert!(text.contains("Account Kit unavailable"));
    // ...the new spans and their fields...
    assert!(
        text.contains("accountkit.verify{path=\"miss\" outcome=\"ok\""),
        "{text}"
    );
    assert!(text.contains("outcome=\"invalid_token\""));
    assert!(text.contains("upstream_duration_ms="));
    assert!(
        text.contains(&format!("enduser.id=\"{}\"", user.account_id)),
        "{text}"
    );
    assert!(
        text.lines().count() > 50,
        "only {} lines captured",
        text.lines().count()
    );
    // ...and none of the secrets.
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into the logs:\n{}",
            text.lines()
                .find(|l| l.contains(secret.as_str()))
                .unwrap_or_default()
        );
    }
}
