//! The Redis tier over TLS (`rediss://`, rustls), against a real TLS-only
//! `redis-server` (`--port 0 --tls-port …`) whose certificates the test
//! makes (a private CA, rcgen): two instances configured as the demo
//! configures them (`ACCOUNTKIT_REDIS_URL`, `ACCOUNTKIT_REDIS_CA_CERT`)
//! share verifications and revocations through it; a wrong or missing CA
//! is a logged handshake failure, never a fallback; mutual TLS.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::redis::*;
use crate::support::*;
use actix_accountkit::cache::CacheConfig;
use actix_accountkit::redis::{RedisTier, RedisTierBuilder, RedisTierError};

/// A tier builder made from these variables, as the demo makes it.
fn from_env(
    emu: &actix_accountkit::emulator::Emulator,
    env: &[(&str, String)],
) -> RedisTierBuilder {
    let env: HashMap<&str, String> = env.iter().cloned().collect();
    let config = config(emu).build().expect("config");
    RedisTier::from_env_with(|name| env.get(name).cloned(), &config)
        .expect("the Redis variables")
        .expect("a Redis is configured")
}

#[actix_web::test]
async fn two_demo_instances_share_verifications_and_revocations_through_a_tls_only_server() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.server_files(false));
    let emu = emulator();
    let env = [
        ("ACCOUNTKIT_REDIS_URL", server.url()),
        (
            "ACCOUNTKIT_REDIS_CA_CERT",
            pki.ca_file().display().to_string(),
        ),
    ];
    assert!(server.url().starts_with("rediss://"));
    let a = Instance::with_tier(&emu, from_env(&emu, &env), CacheConfig::default());
    let b = Instance::with_tier(&emu, from_env(&emu, &env), CacheConfig::default());
    connected(&[&a, &b], true).await;

    // One upstream call for the fleet per token.
    let user = login(&emu, "+15556660001").await;
    let other = login(&emu, "+15556660002").await;
    assert_eq!(a.me(&user.token).await, 200);
    assert_eq!(b.me(&user.token).await, 200, "from Redis");
    assert_eq!(b.me(&other.token).await, 200);
    assert_eq!(a.me(&other.token).await, 200, "from Redis");
    assert_eq!(calls(&emu, "me").await, 2, "one per token");
    assert_eq!(a.kit.cache().stats().shared_hits, 1);
    assert_eq!(b.kit.cache().stats().shared_hits, 1);

    // A logout on A: B refuses, from the broadcast.
    a.logout(&user.token).await;
    let upstream = calls(&emu, "me").await;
    let elapsed = within!(
        Duration::from_secs(5),
        "B refuses the logged-out token",
        b.me(&user.token).await == 401
    );
    eprintln!("TLS: revocation propagated to the other instance in {elapsed:?}");
    assert_eq!(calls(&emu, "me").await, upstream, "refused without asking");
    assert_eq!(b.me(&other.token).await, 200);
    assert_eq!(b.stats().revocations_received, 1);
    // The server really is TLS-only: plaintext gets nowhere.
    assert!(server.command(&["PING"]).map_or(true, |r| r != "+PONG"));
}

#[test]
fn a_wrong_or_missing_ca_is_a_logged_handshake_failure_never_a_fallback() {
    // It reads what was logged: alone in its process.
    in_own_process(
        "redis_tls::a_wrong_or_missing_ca_is_a_logged_handshake_failure_never_a_fallback",
        || actix_web::rt::System::new().block_on(wrong_or_missing_ca()),
    );
}

async fn wrong_or_missing_ca() {
    let logs = logs();
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.server_files(false));
    let emu = emulator();
    let config = config(&emu).build().expect("config");
    let with_password = server.url().replace("rediss://", "rediss://:hunter2@");
    let start = |builder: RedisTierBuilder| {
        Instance::with_tier(&emu, quick(builder), CacheConfig::default())
    };

    // Another CA, the system's roots, plaintext to the TLS port.
    let stranger = Pki::new();
    let wrong_ca =
        start(RedisTier::builder(&with_password, &config).ca_certificate_pem(&stranger.ca_pem));
    let no_ca = start(RedisTier::builder(&with_password, &config));
    let plaintext = start(RedisTier::builder(
        server.url().replace("rediss://", "redis://"),
        &config,
    ));
    let all = [&wrong_ca, &no_ca, &plaintext];
    within!(
        Duration::from_secs(10),
        "every instance tried twice",
        all.iter().all(|i| i.stats().errors >= 2)
    );
    // Requests are served (upstream), the tier never connected.
    let user = login(&emu, "+15556660010").await;
    for instance in all {
        assert_eq!(instance.me(&user.token).await, 200);
        let s = instance.stats();
        assert!(!s.connected, "{s:?}");
        assert_eq!(s.reconnects, 0, "{s:?}");
    }
    assert_eq!(calls(&emu, "me").await, 3);

    // The reason is logged, without the URL or its password.
    let text = logs.text();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("Redis connection failed"))
        .collect();
    // rustls says why: `UnknownIssuer` (no CA given: not one of the
    // public roots), `BadSignature` (another CA of the same name).
    assert_eq!(
        failures
            .iter()
            .filter(|l| l.contains("invalid peer certificate"))
            .count(),
        2,
        "the certificate is named as the reason: {failures:#?}"
    );
    assert!(!text.contains("hunter2"), "a password in the logs");
    assert!(!text.contains(&server.url()), "a URL in the logs");

    // TLS settings for a plaintext URL, or a CA file that is no
    // certificate: refused when built, not ignored.
    let e = RedisTier::builder("redis://127.0.0.1:6379/", &config)
        .ca_certificate_pem(&pki.ca_pem)
        .build()
        .unwrap_err();
    assert!(matches!(e, RedisTierError::TlsWithoutRediss), "{e}");
    let e = RedisTier::builder(server.url(), &config)
        .ca_certificate_pem(pki.client.1.as_bytes())
        .build()
        .unwrap_err();
    assert!(matches!(e, RedisTierError::InvalidCaCertificate), "{e}");
    // Nor does the error repeat the key it was handed.
    assert!(!format!("{e} {e:?}").contains("PRIVATE KEY"));
}

#[actix_web::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.server_files(true));
    let emu = emulator();
    let config = config(&emu).build().expect("config");
    let tier = || RedisTier::builder(server.url(), &config).ca_certificate_pem(&pki.ca_pem);
    let with_cert = Instance::with_tier(
        &emu,
        quick(tier()).client_certificate_pem(&pki.client.0, &pki.client.1),
        CacheConfig::default(),
    );
    let without = Instance::with_tier(&emu, quick(tier()), CacheConfig::default());
    connected(&[&with_cert], true).await;
    within!(
        Duration::from_secs(10),
        "the instance without a certificate tried twice",
        without.stats().errors >= 2
    );
    assert!(!without.stats().connected);
    let shown = format!(
        "{:?}",
        quick(tier()).client_certificate_pem(&pki.client.0, &pki.client.1)
    );
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
