//! Several instances as one cache through a real `redis-server` (started
//! here on a free loopback port, killed at the end): revocations reach the
//! other instance, one upstream call serves the fleet, and a Redis outage
//! neither stops the service nor the revocations once Redis is back.
//!
//! And what someone who can write to that Redis can do: copy or alter an
//! entry (refused, verified upstream, counted, logged once), publish forged
//! revocations (extra misses at most). The subscription stays up across its
//! liveness checks, and an account's index keeps live entries only.
//!
//! A verification dropped after its claim releases the claim at once; the
//! revocation counter moves by random steps; an instance whose revocations
//! wait to be published reads no entry meanwhile. (TLS, cluster and the breaker
//! have modules of their own: `redis_tls`, `redis_cluster`,
//! `redis_breaker`.)

use std::time::{Duration, Instant};

use crate::support::redis::*;
use crate::support::*;
use actix_accountkit::cache::CacheConfig;
use actix_accountkit::hash::TokenHash;
use actix_accountkit::redis::{RedisTier, RedisTierBuilder};
use actix_accountkit::shared::{Revocation, RevocationSink, SharedLookup, SharedStats, SharedTier};
use actix_accountkit::verify::Verification;
use actix_accountkit::AccountKit;
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;

// ---------------------------------------------------------------- tests

#[actix_web::test]
async fn a_logout_on_one_instance_is_refused_by_the_other_within_100_ms() {
    let server = RedisServer::start();
    let emu = emulator();
    let (a, b) = (
        Instance::start(&emu, &server),
        Instance::start(&emu, &server),
    );
    connected(&[&a, &b], true).await;

    let user = login(&emu, "+15557654321").await;
    let bystander = login(&emu, "+15557654321").await; // same account, other session
    assert_eq!(a.me(&user.token).await, 200);
    assert_eq!(b.me(&user.token).await, 200, "from Redis");
    assert_eq!(b.me(&bystander.token).await, 200);
    assert_eq!(
        calls(&emu, "me").await,
        2,
        "one per token, for both instances"
    );
    assert_eq!(b.kit.cache().stats().shared_hits, 1);

    a.logout(&user.token).await;
    let me_calls = calls(&emu, "me").await;
    let elapsed = within!(
        Duration::from_secs(2),
        "B refuses",
        b.me(&user.token).await == 401
    );
    // Reported, not asserted (a loaded machine is no reason to fail).
    eprintln!("revocation propagated to the other instance in {elapsed:?}");
    assert_eq!(a.me(&user.token).await, 401);
    assert_eq!(
        calls(&emu, "me").await,
        me_calls,
        "B refused from Redis's record of the logout, without asking"
    );
    assert_eq!(b.me(&bystander.token).await, 200, "other session untouched");
    assert_eq!(a.stats().revocations_published, 1);
    assert_eq!(b.stats().revocations_received, 1);
    assert_eq!(
        a.stats().revocations_received,
        0,
        "its own is not counted as received"
    );

    // Revocation by account: every session, from Redis too.
    let other = login(&emu, "+4915112345678").await;
    let other2 = login(&emu, "+4915112345678").await;
    for t in [&other.token, &other2.token] {
        assert_eq!(a.me(t).await, 200);
        assert_eq!(b.me(t).await, 200);
    }
    b.kit
        .admin()
        .invalidate_all_tokens(&other.account_id)
        .await
        .expect("invalidate");
    for t in [&other.token, &other2.token] {
        within!(
            Duration::from_millis(500),
            "A refuses the account",
            a.me(t).await == 401
        );
    }

    // Redis never holds a token: only hashes.
    let dump = server.dump();
    for t in [&user.token, &bystander.token, &other.token] {
        assert!(!dump.contains(t.as_str()), "a raw token in Redis");
    }
    assert!(dump.contains(&hex_sha256(&bystander.token)));
}

#[actix_web::test]
async fn two_instances_times_1000_requests_make_one_upstream_call() {
    let server = RedisServer::start();
    let emu = emulator();
    let (a, b) = (
        Instance::start(&emu, &server),
        Instance::start(&emu, &server),
    );
    connected(&[&a, &b], true).await;
    let user = login(&emu, "+15550001111").await;

    // Both instances at once, from the very first request: the instance
    // that loses the race for the claim waits for the other's answer.
    let statuses: Vec<u16> = futures::stream::iter(0..2_000)
        .map(|i| {
            let instance = if i % 2 == 0 { &a } else { &b };
            instance.me(&user.token)
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(calls(&emu, "me").await, 1, "one upstream call in total");
    let (sa, sb) = (a.kit.cache().stats(), b.kit.cache().stats());
    assert_eq!(sa.lookups() + sb.lookups(), 2_000);
    assert_eq!(sa.upstream_calls + sb.upstream_calls, 1);
    assert_eq!(sa.shared_hits + sb.shared_hits, 1, "the other instance");
}

#[actix_web::test]
async fn redis_outage_keeps_serving_and_revocations_flow_again_after() {
    let mut server = RedisServer::start();
    let emu = emulator();
    let (a, b) = (
        Instance::start(&emu, &server),
        Instance::start(&emu, &server),
    );
    connected(&[&a, &b], true).await;
    let u1 = login(&emu, "+15551110001").await;
    let u2 = login(&emu, "+15551110002").await;
    for t in [&u1.token, &u2.token] {
        assert_eq!(a.me(t).await, 200);
        assert_eq!(b.me(t).await, 200);
    }
    let me_calls = calls(&emu, "me").await;
    assert_eq!(me_calls, 2);

    server.kill();
    connected(&[&a, &b], false).await;
    // Cached tokens: served locally, no upstream call, no wait.
    for _ in 0..50 {
        for t in [&u1.token, &u2.token] {
            assert_eq!(a.me(t).await, 200);
            assert_eq!(b.me(t).await, 200);
        }
    }
    assert_eq!(calls(&emu, "me").await, me_calls);
    // A new token: verified upstream at once (Redis is skipped, not
    // awaited: no call waited for the timeout).
    let u3 = login(&emu, "+15551110003").await;
    let timeouts = a.stats().timeouts;
    assert_eq!(a.me(&u3.token).await, 200);
    assert_eq!(a.stats().timeouts, timeouts);
    assert!(
        a.stats().errors > 0 && b.stats().errors > 0,
        "outage counted"
    );

    // A logout while Redis is down: refused here at once, queued for B.
    a.logout(&u2.token).await;
    assert_eq!(a.me(&u2.token).await, 401);
    assert_eq!(a.stats().revocations_pending, 1);

    server.restart();
    connected(&[&a, &b], true).await;
    within!(
        Duration::from_secs(5),
        "the queued revocation reaches B",
        b.me(&u2.token).await == 401
    );
    assert_eq!(a.stats().revocations_pending, 0);
    assert_eq!(b.me(&u1.token).await, 200);
    assert_eq!(a.me(&u1.token).await, 200);

    // And revocations flow as before.
    b.logout(&u1.token).await;
    within!(
        Duration::from_secs(2),
        "A refuses",
        a.me(&u1.token).await == 401
    );
}

/// While a revocation made on an instance waits to be published, that
/// instance reads no Redis entry: the entry of the logged-out token is still
/// there, and Account Kit answers instead.
#[actix_web::test]
async fn no_redis_entry_is_read_while_a_revocation_waits_to_be_published() {
    let server = RedisServer::start();
    let emu = emulator();
    // Queued revocations are retried at each health check: a long interval
    // keeps this one queued for the test.
    let a = Instance::start_with(
        &emu,
        &server,
        |tier| tier.health_interval(Duration::from_secs(60)),
        CacheConfig::default(),
    );
    connected(&[&a], true).await;
    let user = login(&emu, "+15558880001").await;
    let key = format!("accountkit:{APP_ID}:t:{}", hex_sha256(&user.token));
    assert_eq!(a.me(&user.token).await, 200);
    let mut redis = attacker(&server.url()).await;
    within!(
        Duration::from_secs(5),
        "the entry is in Redis",
        raw::<i64>(&mut redis, &["EXISTS", &key]).await == 1
    );

    // Redis reads, but refuses every revocation (here an ACL that denies
    // the counter's INCRBY, the scripts' first write): the user logs out,
    // Account Kit refuses the token from now on, the revocation is queued
    // while the tier stays connected, and the entry stays.
    let denied: String = raw(&mut redis, &["ACL", "SETUSER", "default", "-incrby"]).await;
    assert_eq!(denied, "OK");
    a.logout(&user.token).await;
    assert_eq!(a.stats().revocations_pending, 1);
    assert!(a.stats().connected);
    assert_eq!(raw::<i64>(&mut redis, &["EXISTS", &key]).await, 1);
    // The local refusal goes, as when the negative cache evicts it.
    a.kit.cache().invalidate_token(&user.token);

    let upstream = calls(&emu, "me").await;
    let shared_hits = a.kit.cache().stats().shared_hits;
    assert_eq!(
        a.me(&user.token).await,
        401,
        "a logged-out token was let in by a Redis entry"
    );
    assert_eq!(a.kit.cache().stats().shared_hits, shared_hits, "read Redis");
    assert_eq!(
        calls(&emu, "me").await,
        upstream + 1,
        "Account Kit answered"
    );
    assert_eq!(a.stats().revocations_pending, 1, "still queued");
}

/// A tier whose `publish` waits for the test's go-ahead, to hold a
/// revocation between its local eviction and the shared tier's deletion.
#[derive(Debug, Clone)]
struct Gated {
    inner: RedisTier,
    entered: std::sync::Arc<tokio::sync::Notify>,
    go: std::sync::Arc<tokio::sync::Notify>,
}

impl SharedTier for Gated {
    fn attach(&self, sink: RevocationSink) {
        self.inner.attach(sink)
    }
    fn get<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, SharedLookup> {
        self.inner.get(key)
    }
    fn store<'a>(
        &'a self,
        key: &'a TokenHash,
        ticket: u64,
        answer: Option<&'a Verification>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        self.inner.store(key, ticket, answer, ttl)
    }
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, ()> {
        async move {
            self.entered.notify_one();
            self.go.notified().await;
            self.inner.publish(revocation).await
        }
        .boxed()
    }
    fn stats(&self) -> SharedStats {
        self.inner.stats()
    }
    fn app_id(&self) -> Option<&str> {
        self.inner.app_id()
    }
}

#[actix_web::test]
async fn a_request_during_a_revocation_cannot_re_cache_the_token_from_redis() {
    let server = RedisServer::start();
    let emu = emulator();
    let b = Instance::start(&emu, &server);
    let gated = Gated {
        inner: RedisTier::builder(server.url(), &config(&emu).build().unwrap())
            .timeout(Duration::from_millis(200))
            .build()
            .expect("redis tier"),
        entered: Default::default(),
        go: Default::default(),
    };
    let a_kit = AccountKit::builder(config(&emu).build().unwrap())
        .shared_tier(gated.clone())
        .build()
        .unwrap();
    let a = protected_app(&a_kit);
    within!(
        Duration::from_secs(10),
        "A connected",
        gated.stats().connected
    );
    connected(&[&b], true).await;

    let user = login(&emu, "+15554440001").await;
    assert_eq!(b.me(&user.token).await, 200); // now in Redis too
    let a_me = |t: String| {
        let url = a.url("/me");
        async move { get_with(&url, Some(&t)).await.status().as_u16() }
    };
    assert_eq!(a_me(user.token.clone()).await, 200);

    // A revokes the account: the local eviction is done, the shared one held.
    let admin = a_kit.admin().clone();
    let id = user.account_id.clone();
    let revocation = actix_web::rt::spawn(async move { admin.invalidate_all_tokens(&id).await });
    gated.entered.notified().await;
    // A request in that window is answered from Redis's still-live entry...
    assert_eq!(a_me(user.token.clone()).await, 200);
    gated.go.notify_one();
    revocation.await.unwrap().unwrap();
    // ...but once the revocation returns, A refuses at once, and B soon.
    assert_eq!(
        a_me(user.token.clone()).await,
        401,
        "re-cached during the revocation"
    );
    within!(
        Duration::from_millis(100),
        "B refuses",
        b.me(&user.token).await == 401
    );
}

#[actix_web::test]
async fn a_tier_built_for_another_app_is_refused() {
    let server = RedisServer::start();
    let emu = emulator();
    let other_config = actix_accountkit::config::Config::builder(OTHER_APP_ID, OTHER_APP_SECRET)
        .build()
        .unwrap();
    let other = RedisTier::builder(server.url(), &other_config)
        .build()
        .expect("redis tier");
    let built = AccountKit::builder(config(&emu).build().unwrap())
        .shared_tier(other)
        .build();
    let error = built.expect_err("a tier of another app must be refused");
    assert!(error.to_string().contains("another app"), "{error}");
}

// ---------------------------------------------------------------- an attacker with write access to Redis

/// A well-formed token Account Kit never issued.
const MADE_UP: &str = "EMAWmadeUpTokenThatAccountKitNeverIssued0123456789abcdef";

#[test]
fn a_copied_or_altered_entry_is_a_miss_counted_and_logged_once() {
    // It reads what was logged: alone in its process.
    in_own_process(
        "redis_tier::a_copied_or_altered_entry_is_a_miss_counted_and_logged_once",
        || actix_web::rt::System::new().block_on(copied_or_altered()),
    );
}

async fn copied_or_altered() {
    let logs = logs();
    let server = RedisServer::start();
    let emu = emulator();
    // Its own namespace: its log lines are told from other tests' ones.
    let ns = "forgery";
    let start = || Instance::start_with(&emu, &server, |t| t.namespace(ns), CacheConfig::default());
    let a = start();
    connected(&[&a], true).await;
    let mut redis = attacker(&server.url()).await;
    let key = |token: &str| format!("{ns}:{APP_ID}:t:{}", hex_sha256(token));

    // A verified token: its entry is in Redis.
    let victim = login(&emu, "+15557770001").await;
    assert_eq!(
        a.me_body(&victim.token).await,
        (200, victim.account_id.clone())
    );
    let upstream = calls(&emu, "me").await;
    assert_eq!(upstream, 1);

    // COPY it to a made-up token's key: the made-up token is not the
    // victim; it is verified upstream (and refused there).
    let copied: i64 = raw(&mut redis, &["COPY", &key(&victim.token), &key(MADE_UP)]).await;
    assert_eq!(copied, 1);
    let (status, body) = a.me_body(MADE_UP).await;
    assert_eq!(status, 401, "a copied entry was accepted: {body}");
    assert!(!body.contains(&victim.account_id));
    assert_eq!(calls(&emu, "me").await, upstream + 1, "asked upstream");
    assert_eq!(a.stats().rejected_entries, 1);

    // Alter an entry in place: the account id inside it, one digit.
    let user = login(&emu, "+15557770002").await;
    assert_eq!(a.me_body(&user.token).await, (200, user.account_id.clone()));
    let value: String = raw(&mut redis, &["GET", &key(&user.token)]).await;
    let at = value
        .find(&user.account_id)
        .expect("the account id in the entry");
    let digit = if user.account_id.ends_with('1') {
        "2"
    } else {
        "1"
    };
    let offset = (at + user.account_id.len() - 1).to_string();
    let _: i64 = raw(&mut redis, &["SETRANGE", &key(&user.token), &offset, digit]).await;
    a.kit.cache().invalidate_token(&user.token); // local only: A asks Redis next
    let upstream = calls(&emu, "me").await;
    assert_eq!(
        a.me_body(&user.token).await,
        (200, user.account_id.clone()),
        "the altered account was served"
    );
    assert_eq!(calls(&emu, "me").await, upstream + 1, "asked upstream");
    assert_eq!(a.stats().rejected_entries, 2);

    // The upstream answers replaced both values: another instance gets
    // them from Redis, without asking, and refuses nothing it should not.
    let b = start();
    connected(&[&b], true).await;
    let upstream = calls(&emu, "me").await;
    assert_eq!(b.me(MADE_UP).await, 401);
    assert_eq!(b.me_body(&user.token).await, (200, user.account_id.clone()));
    assert_eq!(
        b.me_body(&victim.token).await,
        (200, victim.account_id.clone())
    );
    assert_eq!(calls(&emu, "me").await, upstream, "all from Redis");
    assert_eq!(b.stats().rejected_entries, 0);
    assert_eq!(b.kit.cache().stats().shared_hits, 3);

    // Logged once (a warning), counted every time; nothing secret in it.
    let text = logs.text();
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("tier={ns}:{APP_ID}")))
        .collect();
    let warnings: Vec<&&str> = ours
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("failed its authentication check"))
        .collect();
    assert_eq!(warnings.len(), 1, "{ours:#?}");
    for secret in [
        victim.token.as_str(),
        user.token.as_str(),
        MADE_UP,
        &hex_sha256(MADE_UP),
        &hex_sha256(&user.token),
        APP_SECRET,
        "redis://",
    ] {
        assert!(!text.contains(secret), "{secret} in the logs");
    }
}

#[actix_web::test]
async fn the_subscription_stays_up_across_many_liveness_checks() {
    let server = RedisServer::start();
    let emu = emulator();
    let quick = |t: RedisTierBuilder| t.health_interval(Duration::from_millis(200));
    let a = Instance::start_with(&emu, &server, quick, CacheConfig::default());
    let b = Instance::start_with(&emu, &server, quick, CacheConfig::default());
    connected(&[&a, &b], true).await;
    let kept = login(&emu, "+15557770010").await;
    assert_eq!(b.me(&kept.token).await, 200);

    // 1.5 s: seven liveness checks, with revocations flowing meanwhile.
    let start = Instant::now();
    let mut revoked = 0;
    while start.elapsed() < Duration::from_millis(1_500) {
        let user = login(&emu, "+15557770011").await;
        assert_eq!(a.me(&user.token).await, 200);
        a.logout(&user.token).await;
        revoked += 1;
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    within!(
        Duration::from_secs(2),
        "B received every revocation",
        b.stats().revocations_received == revoked
    );
    for instance in [&a, &b] {
        let s = instance.stats();
        assert!(s.connected, "{s:?}");
        assert_eq!((s.reconnects, s.resyncs, s.errors), (0, 0, 0), "{s:?}");
    }
    // B's cache was never emptied: the token is still a local hit.
    let hits = b.kit.cache().stats().hits;
    assert_eq!(b.me(&kept.token).await, 200);
    assert_eq!(b.kit.cache().stats().hits, hits + 1);
}

/// Members of an account's index, whatever its type.
async fn index_len(redis: &mut ::redis::aio::MultiplexedConnection, account: &str) -> i64 {
    const LEN: &str = "local t = redis.call('TYPE', KEYS[1]).ok \
        if t == 'zset' then return redis.call('ZCARD', KEYS[1]) end \
        if t == 'set' then return redis.call('SCARD', KEYS[1]) end \
        return 0";
    let key = format!("accountkit:{APP_ID}:a:{account}");
    raw(redis, &["EVAL", LEN, "1", &key]).await
}

#[actix_web::test]
async fn an_active_accounts_index_keeps_only_live_entries() {
    let server = RedisServer::start();
    let emu = emulator();
    let ttl = Duration::from_millis(500);
    let cache = CacheConfig::builder()
        .ttl(ttl)
        .build()
        .expect("cache config");
    let a = Instance::start_with(&emu, &server, |t| t, cache);
    connected(&[&a], true).await;
    let mut redis = attacker(&server.url()).await;
    let index = |account: &str| format!("accountkit:{APP_ID}:a:{account}");

    // One account stays active while its tokens come and go: a new token
    // at least every 50 ms, for three TTLs and three times as many tokens
    // as can be alive at once (a slow machine only makes it longer). The
    // index never goes idle long enough to expire as a whole.
    const SPACING: Duration = Duration::from_millis(50);
    // Entries live at most `ttl`; stored 50 ms apart or more, at most
    // ttl / 50 ms + 1 of them can be alive at once.
    let live_bound = (ttl.as_millis() / SPACING.as_millis()) as usize + 1;
    let start = Instant::now();
    let mut account = String::new();
    let mut tokens = Vec::new();
    while start.elapsed() < 3 * ttl || tokens.len() < 3 * live_bound {
        let user = login(&emu, "+15557770020").await;
        assert_eq!(a.me(&user.token).await, 200);
        account = user.account_id;
        tokens.push(user.token);
        actix_web::rt::time::sleep(SPACING).await;
    }
    let members = index_len(&mut redis, &account).await;
    assert!(
        (1..=live_bound as i64).contains(&members),
        "{members} members in the index of an account with at most {live_bound} live \
         entries ({} stored)",
        tokens.len()
    );
    let pttl: i64 = raw(&mut redis, &["PTTL", &index(&account)]).await;
    assert!(
        pttl > 0 && pttl <= ttl.as_millis() as i64,
        "index PTTL {pttl}"
    );

    // And it still finds them: revoking the account refuses the live ones.
    let live: Vec<&String> = tokens.iter().rev().take(3).collect();
    a.kit
        .admin()
        .invalidate_all_tokens(&account)
        .await
        .expect("invalidate");
    assert_eq!(index_len(&mut redis, &account).await, 0);
    for token in live {
        assert_eq!(a.me(token).await, 401);
    }
}

#[actix_web::test]
async fn forged_revocation_messages_cost_extra_misses_only() {
    let server = RedisServer::start();
    let emu = emulator();
    let (a, b) = (
        Instance::start(&emu, &server),
        Instance::start(&emu, &server),
    );
    connected(&[&a, &b], true).await;
    let mut redis = attacker(&server.url()).await;
    let channel = format!("accountkit:{APP_ID}:revocations");
    let gen_key = format!("accountkit:{APP_ID}:gen");
    let user = login(&emu, "+15557770030").await;
    let other = login(&emu, "+15557770031").await;
    for t in [&user.token, &other.token] {
        assert_eq!(a.me(t).await, 200);
        assert_eq!(b.me(t).await, 200);
    }
    let publisher = redis.clone();
    let publish = |message: String| {
        let (mut redis, channel) = (publisher.clone(), channel.clone());
        async move {
            let _: i64 = raw(&mut redis, &["PUBLISH", &channel, &message]).await;
        }
    };

    // 1. The next number in the revocation sequence, forged: it must not
    // pass for the real revocation B then misses (its subscription dropped
    // just before; published as another instance would, in one
    // transaction). B finds out when it reconnects, and refuses the token.
    let gen: Option<u64> = raw(&mut redis, &["GET", &gen_key]).await;
    let gen = gen.unwrap_or(0);
    let received = b.stats().revocations_received;
    publish(format!("someone {} t {}", gen + 1, hex_sha256(MADE_UP))).await;
    within!(
        Duration::from_secs(2),
        "B read the forged message",
        b.stats().revocations_received == received + 1
    );
    kit(&emu)
        .admin()
        .logout(&user.token)
        .await
        .expect("upstream logout");
    let hash = hex_sha256(&user.token);
    let _: ::redis::Value = ::redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .cmd("INCR")
        .arg(&gen_key)
        .cmd("DEL")
        .arg(format!("accountkit:{APP_ID}:t:{hash}"))
        .cmd("PUBLISH")
        .arg(&channel)
        .arg(format!("elsewhere {} t {hash}", gen + 1))
        .query_async(&mut redis)
        .await
        .expect("transaction");
    within!(
        Duration::from_secs(5),
        "B refuses the token revoked while it was away",
        b.me(&user.token).await == 401
    );
    connected(&[&a, &b], true).await;
    assert_eq!(
        b.me_body(&other.token).await,
        (200, other.account_id.clone())
    );

    // 2. Every kind, any counter, readable or not: evictions at most. The
    // token passes as its own account on both instances, from Redis (no
    // upstream call); nothing is refused.
    let upstream = calls(&emu, "me").await;
    let received = b.stats().revocations_received;
    for message in [
        format!("someone 999999 r {}", hex_sha256(&other.token)),
        format!("someone {} t {}", u64::MAX, hex_sha256(&other.token)),
        format!("someone 1 a {}", other.account_id),
        "someone 2 t not-a-hash".to_owned(),
        "garbage".to_owned(),
    ] {
        publish(message).await;
    }
    within!(
        Duration::from_secs(2),
        "B read the forged messages",
        b.stats().revocations_received == received + 4
    );
    for instance in [&a, &b] {
        assert_eq!(
            instance.me_body(&other.token).await,
            (200, other.account_id.clone())
        );
    }
    assert_eq!(calls(&emu, "me").await, upstream, "all from Redis");
    assert_eq!(b.stats().rejected_entries, 0);

    // And real revocations still work after them.
    a.logout(&other.token).await;
    within!(
        Duration::from_secs(2),
        "B refuses",
        b.me(&other.token).await == 401
    );
}

#[actix_web::test]
async fn a_dropped_flight_releases_its_claim_at_once() {
    let server = RedisServer::start();
    let emu = emulator();
    // A gives a verification 300 ms (its flight deadline); a claim would
    // hold the other instances back for a minute.
    let a = Instance::start_with(
        &emu,
        &server,
        |t| t.claim_wait(Duration::from_secs(60)),
        CacheConfig::builder()
            .flight_deadline(Duration::from_millis(300))
            .build()
            .expect("cache config"),
    );
    let b = Instance::start(&emu, &server);
    connected(&[&a, &b], true).await;
    let user = login(&emu, "+15551110005").await;
    let claim = format!("accountkit:{APP_ID}:c:{}", hex_sha256(&user.token));
    let mut redis = attacker(&server.url()).await;

    // Account Kit is slow: A's flight claims the token, then is dropped
    // at its deadline, before it can store anything.
    fault(&emu, serde_json::json!({"latency_ms": 3000, "times": 1})).await;
    let url = a.app.url("/me");
    let token = user.token.clone();
    let request = actix_web::rt::spawn(async move { get_with(&url, Some(&token)).await.status() });
    within!(
        Duration::from_secs(10),
        "A claims the token",
        raw::<i64>(&mut redis, &["EXISTS", &claim]).await == 1
    );
    let status = request.await.expect("request");
    assert_eq!(status, 503, "the flight ran out of time");
    // Released when the flight was dropped, not a minute later.
    within!(
        Duration::from_secs(10),
        "the claim is released",
        raw::<i64>(&mut redis, &["EXISTS", &claim]).await == 0
    );
    // So B verifies the token itself, without waiting for the claim.
    assert_eq!(b.me(&user.token).await, 200);
    assert_eq!(b.kit.cache().stats().upstream_calls, 1);
}

#[actix_web::test]
async fn the_revocation_counter_moves_by_random_steps() {
    let server = RedisServer::start();
    let emu = emulator();
    let a = Instance::start(&emu, &server);
    connected(&[&a], true).await;
    let mut redis = attacker(&server.url()).await;
    let gen_key = format!("accountkit:{APP_ID}:gen");
    let revoke = async || {
        let user = login(&emu, "+15551110006").await;
        assert_eq!(a.me(&user.token).await, 200);
        a.logout(&user.token).await;
        assert_eq!(a.me(&user.token).await, 401);
    };

    // A counter rolled back (a failover that lost writes) and moved again
    // must not land on the value an instance took as its checkpoint.
    let mut counters = Vec::new();
    for _ in 0..4 {
        revoke().await;
        counters.push(raw::<u64>(&mut redis, &["GET", &gen_key]).await);
    }
    let steps: Vec<u64> = counters
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .collect();
    assert!(
        steps.iter().all(|s| (1..1 << 32).contains(s)),
        "{counters:?}"
    );
    assert!(steps.iter().any(|&s| s > 1), "steps of one: {counters:?}");

    // Near the end of the range it starts over, and revocations go on.
    let _: () = raw(&mut redis, &["SET", &gen_key, "100000000000000000"]).await;
    revoke().await;
    let counter = raw::<u64>(&mut redis, &["GET", &gen_key]).await;
    assert!((1..1 << 32).contains(&counter), "{counter}");
    assert_eq!(a.stats().revocations_published, 5);
}
