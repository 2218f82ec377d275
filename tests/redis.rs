//! Several instances as one cache through a real `redis-server` (started
//! here on a free loopback port, killed at the end): revocations reach the
//! other instance, one upstream call serves the fleet, and a Redis outage
//! neither stops the service nor the revocations once Redis is back.
#![cfg(feature = "redis")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_accountkit::cache::TokenHash;
use actix_accountkit::redis::RedisTier;
use actix_accountkit::shared::{
    Answer, Revocation, RevocationSink, SharedLookup, SharedStats, SharedTier,
};
use actix_accountkit::AccountKit;
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;
use support::*;

// ---------------------------------------------------------------- redis-server

/// A `redis-server` on 127.0.0.1, no persistence; killed on drop.
struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn redis_server_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server is not on PATH: the Redis tests need a real one. \
                 Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`, \
                 macOS: `brew install redis`); .ci/run does this for CI."
            )
        })
}

impl RedisServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            binary: redis_server_binary(),
            port,
            child: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port and waits until it answers PING.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.command(&["PING"]).is_ok_and(|r| r == "+PONG") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// One command in RESP; the reply's first line, or the bulk string.
    fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_owned();
        match line.strip_prefix('$').map(str::parse::<i64>) {
            Some(Ok(n)) if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                reader.read_exact(&mut body)?;
                body.truncate(n as usize);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => Ok(line),
        }
    }

    /// Every key and every value, one a line.
    fn dump(&self) -> String {
        const DUMP: &str = "local r = {} \
            for _, k in ipairs(redis.call('KEYS', '*')) do \
              table.insert(r, k) \
              local t = redis.call('TYPE', k).ok \
              if t == 'string' then table.insert(r, redis.call('GET', k)) \
              elseif t == 'set' then for _, m in ipairs(redis.call('SMEMBERS', k)) do table.insert(r, m) end end \
            end return table.concat(r, '\\n')";
        self.command(&["EVAL", DUMP, "0"]).expect("dump")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------- instances

struct Instance {
    kit: AccountKit,
    redis: RedisTier,
    app: Served,
}

impl Instance {
    fn start(emu: &actix_accountkit::emulator::Emulator, server: &RedisServer) -> Self {
        let redis = RedisTier::builder(server.url(), APP_ID)
            .timeout(Duration::from_millis(200))
            .max_backoff(Duration::from_millis(200))
            .health_interval(Duration::from_millis(500))
            .start()
            .expect("redis tier");
        let kit = AccountKit::builder(config(emu).build().expect("config"))
            .shared_tier(redis.clone())
            .build()
            .expect("kit");
        let app = protected_app(&kit);
        Self { kit, redis, app }
    }

    fn stats(&self) -> SharedStats {
        self.redis.stats()
    }

    async fn me(&self, token: &str) -> u16 {
        get_with(&self.app.url("/me"), Some(token))
            .await
            .status()
            .as_u16()
    }

    async fn logout(&self, token: &str) {
        let res = http()
            .post(self.app.url("/logout"))
            .bearer_auth(token)
            .send()
            .await
            .expect("logout");
        assert_eq!(res.status(), 204);
    }
}

/// Polls `$check` (an expression that may `.await`) every millisecond
/// until it holds; evaluates to the time it took.
macro_rules! within {
    ($limit:expr, $what:expr, $check:expr) => {{
        let start = Instant::now();
        loop {
            if $check {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < $limit,
                "{}: not within {:?}",
                $what,
                $limit
            );
            actix_web::rt::time::sleep(Duration::from_millis(1)).await;
        }
    }};
}

async fn connected(instances: &[&Instance], yes: bool) {
    within!(
        Duration::from_secs(10),
        "connection state",
        instances.iter().all(|i| i.stats().connected == yes)
    );
}

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
    eprintln!("revocation propagated to the other instance in {elapsed:?}");
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
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

fn hex_sha256(token: &str) -> String {
    hex::encode(actix_accountkit::cache::token_hash(token))
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
    // A new token: verified upstream at once (Redis is skipped, not awaited).
    let u3 = login(&emu, "+15551110003").await;
    let start = Instant::now();
    assert_eq!(a.me(&u3.token).await, 200);
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
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
    let elapsed = within!(
        Duration::from_secs(2),
        "A refuses",
        a.me(&u1.token).await == 401
    );
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
}

#[actix_web::test]
async fn a_hung_redis_does_not_hang_requests() {
    let server = RedisServer::start();
    let emu = emulator();
    let a = Instance::start(&emu, &server);
    connected(&[&a], true).await;
    let user = login(&emu, "+15551110004").await;

    // SIGSTOP: connections stay open, nothing answers.
    let stop = |signal: &str| {
        let status = Command::new("kill")
            .args([signal, &server.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    stop("-STOP");
    let start = Instant::now();
    assert_eq!(a.me(&user.token).await, 200);
    let elapsed = start.elapsed();
    stop("-CONT");
    // One bounded lookup (200 ms), then Account Kit.
    assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
    assert!(a.stats().errors >= 1);
    assert_eq!(calls(&emu, "me").await, 1);
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
        answer: Option<&'a Answer>,
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
        inner: RedisTier::builder(server.url(), APP_ID)
            .timeout(Duration::from_millis(200))
            .start()
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
    let other = RedisTier::builder(server.url(), OTHER_APP_ID)
        .start()
        .expect("redis tier");
    let built = AccountKit::builder(config(&emu).build().unwrap())
        .shared_tier(other)
        .build();
    let error = built.expect_err("a tier of another app must be refused");
    assert!(error.to_string().contains("another app"), "{error}");
}
