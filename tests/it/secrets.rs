//! No error, Debug output or refusal carries the app secret, the client
//! token or a user access token: every error variant, built for real.

use crate::support::*;
use actix_accountkit::client::GraphClient;
use actix_accountkit::config::Config;
use actix_accountkit::error::ConfigError;
use actix_accountkit::verify::{GraphVerifier, Refusal, Verifier};
use actix_accountkit::Error;
use serde_json::json;

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} leaks a secret: {text}");
    }
}

fn check_error(e: &Error, secrets: &[&str]) {
    assert_clean("Display", &e.to_string(), secrets);
    assert_clean("Debug", &format!("{e:?}"), secrets);
    assert_clean("alternate Debug", &format!("{e:#?}"), secrets);
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        assert_clean("source", &format!("{s} {s:?}"), secrets);
        source = s.source();
    }
}

#[actix_web::test]
async fn every_error_variant_is_free_of_secrets() {
    let emu = emulator();
    let user = login(&emu, "+15553334444").await;
    let secrets = [
        APP_SECRET,
        CLIENT_TOKEN,
        user.token.as_str(),
        user.code.as_str(),
    ];
    let c = GraphClient::new(config(&emu).build().unwrap()).unwrap();
    let mut seen = Vec::new();

    // Graph: a message that echoes the token and the secret back.
    let echo = format!(
        r#"{{"error":{{"message":"Malformed access token {} for AA|{}|{}","type":"OAuthException","code":190,"error_user_msg":"{}","fbtrace_id":"x"}}}}"#,
        user.token, APP_ID, APP_SECRET, user.token
    );
    fault(&emu, json!({"status": 400, "body": echo, "times": 1})).await;
    let e = c.me(&user.token).await.unwrap_err();
    assert!(matches!(e, Error::Graph(_)));
    check_error(&e, &secrets);
    seen.push("Graph");

    // Decode: a wrong-shaped body quoting the token.
    let wrong = format!(r#"{{"id": 12, "phone": "{}"}}"#, user.token);
    fault(&emu, json!({"status": 200, "body": wrong, "times": 1})).await;
    let e = c.me(&user.token).await.unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    check_error(&e, &secrets);
    seen.push("Decode");

    // Timeout on a GET whose URL carries the token and the proof.
    fault(&emu, json!({"latency_ms": 2000, "times": 1})).await;
    let e = c.me(&user.token).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    check_error(&e, &secrets);
    seen.push("Timeout");

    // Config, InvalidLimit, InvalidAccountId.
    let e = Config::builder(APP_ID, APP_SECRET)
        .api_version("1.3")
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        Error::Config(ConfigError::InvalidVersion { .. })
    ));
    check_error(&e, &secrets);
    let e = Config::builder(APP_ID, format!("{APP_SECRET} with space"))
        .build()
        .unwrap_err();
    check_error(&e, &secrets);
    seen.push("Config");
    let e = c.accounts_page(0, None).await.unwrap_err();
    check_error(&e, &secrets);
    seen.push("InvalidLimit");
    let e = c.delete_account(&user.token).await.unwrap_err();
    assert!(matches!(e, Error::InvalidAccountId));
    check_error(&e, &secrets);
    seen.push("InvalidAccountId");

    // Transport: connection refused, with the secret in the query string.
    emu.stop();
    let e = c.exchange_code(&user.code).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    check_error(&e, &secrets);
    let e = c.me(&user.token).await.unwrap_err();
    check_error(&e, &secrets);
    seen.push("Transport");

    // Refusals wrap errors: same guarantee.
    let verifier = GraphVerifier::new(c.clone());
    let refusal = verifier.verify(&user.token).await.unwrap_err();
    assert!(matches!(refusal, Refusal::Unavailable(_)));
    assert_clean("Refusal", &format!("{refusal} {refusal:?}"), &secrets);

    assert_eq!(seen.len(), 7, "one check per variant of Error");
}

#[test]
fn debug_output_hides_secrets() {
    let config = Config::builder(APP_ID, APP_SECRET)
        .client_token(CLIENT_TOKEN)
        .build()
        .unwrap();
    let text = format!("{config:?} {config:#?}");
    assert_clean("Config", &text, &[APP_SECRET, CLIENT_TOKEN]);
    let client = GraphClient::new(config).unwrap();
    assert_clean(
        "GraphClient",
        &format!("{client:?}"),
        &[APP_SECRET, CLIENT_TOKEN],
    );
    let kit = actix_accountkit::AccountKit::new(client.config().clone()).unwrap();
    assert_clean(
        "AccountKit",
        &format!("{kit:?}"),
        &[APP_SECRET, CLIENT_TOKEN],
    );
}
