//! The Redis tier's breaker, against a real `redis-server` stopped with
//! SIGSTOP (its sockets stay open; nothing answers): a hung Redis costs a
//! couple of timeouts, not one per cache miss; the tier reconnects, and
//! closes the breaker once a probe finds Redis answering again.
//!
//! Everything is asserted on counts (the tier's stats, the emulator's call
//! counter), never on elapsed time.

use std::time::Duration;

use crate::support::redis::*;
use crate::support::*;
use actix_accountkit::cache::CacheConfig;
use actix_accountkit::shared::BreakerState;

#[actix_web::test]
async fn a_hung_redis_costs_a_couple_of_timeouts_not_one_per_miss() {
    let server = RedisServer::start();
    let emu = emulator();
    // The liveness check is out of the way: only the requests' own calls
    // can find out that Redis hangs.
    let hour = Duration::from_secs(3600);
    let a = Instance::start_with(
        &emu,
        &server,
        |t| t.health_interval(hour),
        CacheConfig::default(),
    );
    let b = Instance::start(&emu, &server);
    connected(&[&a, &b], true).await;
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(login(&emu, &format!("+1555222{i:04}")).await);
    }

    let stopped = server.stop();
    // 20 cold requests in a row: each a miss that would ask Redis first.
    for user in &users {
        assert_eq!(a.me(&user.token).await, 200);
    }
    let s = a.stats();
    eprintln!("after 20 cold requests with Redis stopped: {s:?}");
    assert!(s.timeouts <= 2, "one timeout per miss: {s:?}");
    assert!(s.timeouts >= 1, "the hang was noticed: {s:?}");
    assert_eq!(s.breaker, BreakerState::Open, "{s:?}");
    assert_eq!(s.breaker_trips, 1, "{s:?}");
    assert!(s.skipped >= 10, "the others skipped Redis: {s:?}");
    assert_eq!(calls(&emu, "me").await, 20, "each verified upstream once");
    // The timeouts forced a reconnection, although the subscription had
    // not failed a liveness check.
    connected(&[&a], false).await;

    drop(stopped); // SIGCONT
    connected(&[&a, &b], true).await;
    assert!(a.stats().reconnects >= 1);
    // A probe (after the back-off) finds Redis answering: closed again.
    let mut probes = 0;
    within!(Duration::from_secs(20), "the breaker closes", {
        let user = login(&emu, &format!("+1555333{probes:04}")).await;
        probes += 1;
        assert_eq!(a.me(&user.token).await, 200);
        a.stats().breaker == BreakerState::Closed
    });
    // And the tier is shared again: B takes A's answer from Redis.
    let user = login(&emu, "+15553339999").await;
    assert_eq!(a.me(&user.token).await, 200);
    let upstream = calls(&emu, "me").await;
    assert_eq!(b.me(&user.token).await, 200);
    assert_eq!(calls(&emu, "me").await, upstream, "from Redis");
    assert_eq!(a.stats().breaker_trips, 1);
}
