//! The Redis tier on a real Redis Cluster (`redis-server --cluster-enabled
//! yes` nodes on loopback ports, joined by `redis-cli --cluster create`):
//! two instances configured as the demo configures them
//! (`ACCOUNTKIT_REDIS_CLUSTER`, each given other nodes) share
//! verifications and revocations; the tier's keys live in one slot; missed
//! revocations are still detected; and with replicas, the tier keeps
//! working after the master of its slot is killed and a replica takes
//! over.
//!
//! Every wait polls a state (`cluster_state:ok`, the tier's stats), each
//! with a bound: a hang fails the test.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::redis::*;
use crate::support::*;
use actix_accountkit::cache::CacheConfig;
use actix_accountkit::emulator::Emulator;
use actix_accountkit::redis::RedisTier;

/// The tier's hash tag, and its revocation counter.
fn tagged(key: &str) -> String {
    format!("{{accountkit:{APP_ID}}}:{key}")
}

/// An instance whose tier is configured from `ACCOUNTKIT_REDIS_CLUSTER`,
/// as the demo configures it.
fn demo_instance(emu: &Emulator, nodes: &[String]) -> Instance {
    let env = HashMap::from([("ACCOUNTKIT_REDIS_CLUSTER", nodes.join(","))]);
    let config = config(emu).build().expect("config");
    let builder = RedisTier::from_env_with(|name| env.get(name).cloned(), &config)
        .expect("the Redis variables")
        .expect("a Redis is configured");
    Instance::with_tier(emu, builder, CacheConfig::default())
}

#[actix_web::test]
async fn two_demo_instances_share_verifications_and_revocations_through_a_3_master_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let urls = cluster.urls();
    let emu = emulator();
    // A knows every node; B only the last one and the first.
    let a = demo_instance(&emu, &urls);
    let b = demo_instance(&emu, &[urls[2].clone(), urls[0].clone()]);
    connected(&[&a, &b], true).await;

    // One upstream call for the fleet per token.
    let user = login(&emu, "+15558880001").await;
    let bystander = login(&emu, "+15558880001").await;
    assert_eq!(a.me(&user.token).await, 200);
    assert_eq!(b.me(&user.token).await, 200, "from Redis");
    assert_eq!(b.me(&bystander.token).await, 200);
    assert_eq!(a.me(&bystander.token).await, 200, "from Redis");
    assert_eq!(calls(&emu, "me").await, 2, "one per token");

    // A logout on A: B refuses it, from the broadcast.
    a.logout(&user.token).await;
    let upstream = calls(&emu, "me").await;
    let elapsed = within!(
        Duration::from_secs(5),
        "B refuses the logged-out token",
        b.me(&user.token).await == 401
    );
    eprintln!("cluster: revocation propagated to the other instance in {elapsed:?}");
    assert_eq!(calls(&emu, "me").await, upstream, "refused without asking");
    assert_eq!(b.me(&bystander.token).await, 200, "other session untouched");
    assert_eq!(b.stats().revocations_received, 1);

    // An account revocation: its script computes the entries' keys from
    // the index; they are in the same slot.
    let other = login(&emu, "+4915112345679").await;
    assert_eq!(a.me(&other.token).await, 200);
    assert_eq!(b.me(&other.token).await, 200);
    b.kit
        .admin()
        .invalidate_all_tokens(&other.account_id)
        .await
        .expect("invalidate");
    within!(
        Duration::from_secs(5),
        "A refuses the account",
        a.me(&other.token).await == 401
    );

    // Every key of the tier is on the master of its slot, none elsewhere.
    let home = cluster.master_of(&tagged("gen")).expect("a master");
    let dump = cluster.nodes[home].dump();
    assert!(dump.contains(&hex_sha256(&bystander.token)), "{dump}");
    for (i, node) in cluster.nodes.iter().enumerate() {
        if i != home {
            assert_eq!(node.command(&["DBSIZE"]).expect("DBSIZE"), ":0", "node {i}");
        }
    }

    // Missed revocations are still detected: the subscriptions drop while
    // a revocation happens (in one transaction on the master); each
    // instance sees that the counter moved and empties its local cache.
    let resyncs = (a.stats().resyncs, b.stats().resyncs);
    let upstream = calls(&emu, "me").await;
    let mut redis = attacker(&cluster.nodes[home].url()).await;
    let _: ::redis::Value = ::redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .cmd("INCRBY")
        .arg(tagged("gen"))
        .arg(12345)
        .query_async(&mut redis)
        .await
        .expect("transaction");
    within!(
        Duration::from_secs(10),
        "both instances resync",
        a.stats().resyncs > resyncs.0 && b.stats().resyncs > resyncs.1
    );
    connected(&[&a, &b], true).await;
    // Emptied locally, the token is taken from Redis again.
    let shared_hits = b.kit.cache().stats().shared_hits;
    assert_eq!(b.me(&bystander.token).await, 200);
    assert_eq!(b.kit.cache().stats().shared_hits, shared_hits + 1);
    assert_eq!(calls(&emu, "me").await, upstream, "without asking");
}

#[actix_web::test]
async fn the_tier_keeps_working_after_its_master_fails_over() {
    let mut cluster = RedisCluster::start(3, 1);
    let urls = cluster.urls();
    let emu = emulator();
    let a = demo_instance(&emu, &urls);
    let b = demo_instance(&emu, &urls);
    connected(&[&a, &b], true).await;
    let before = login(&emu, "+15558880010").await;
    assert_eq!(a.me(&before.token).await, 200);
    assert_eq!(b.me(&before.token).await, 200, "from Redis");
    assert_eq!(calls(&emu, "me").await, 1);

    // The master of the tier's slot dies (SIGKILL).
    let old = cluster.master_of(&tagged("gen")).expect("a master");
    cluster.nodes[old].kill();
    // A logout meanwhile: refused on A at once, queued or published.
    a.logout(&before.token).await;
    assert_eq!(a.me(&before.token).await, 401);

    // A replica takes over; both instances find it.
    let new = within_blocking(Duration::from_secs(30), "a replica takes over", || {
        cluster.master_of(&tagged("gen"))
    });
    assert_ne!(new, old);
    cluster.wait_ok(Duration::from_secs(30));
    within!(
        Duration::from_secs(30),
        "both instances reconnect",
        [&a, &b]
            .iter()
            .all(|i| i.stats().connected && i.stats().reconnects >= 1)
    );
    eprintln!("after the failover: A {:?}, B {:?}", a.stats(), b.stats());
    within!(
        Duration::from_secs(10),
        "B refuses the token logged out during the failover",
        b.me(&before.token).await == 401
    );
    assert_eq!(a.stats().revocations_pending, 0);

    // And the tier works as before: one upstream call, revocations flow.
    let after = login(&emu, "+15558880011").await;
    let upstream = calls(&emu, "me").await;
    assert_eq!(b.me(&after.token).await, 200);
    assert_eq!(a.me(&after.token).await, 200, "from Redis");
    assert_eq!(calls(&emu, "me").await, upstream + 1);
    b.logout(&after.token).await;
    let elapsed = within!(
        Duration::from_secs(5),
        "A refuses",
        a.me(&after.token).await == 401
    );
    eprintln!("cluster after failover: revocation propagated in {elapsed:?}");
}
