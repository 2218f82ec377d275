//! Real `redis-server` processes for the Redis tier's tests (each on free
//! loopback ports, in a temporary directory of its own, killed on drop),
//! and instances of the app under test sharing them.
//!
//! Everything waits on readiness (an answered `PING`, `cluster_state:ok`),
//! never on a fixed sleep, and every wait is bounded: a hang fails the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::*;
use actix_accountkit::cache::CacheConfig;
use actix_accountkit::emulator::Emulator;
use actix_accountkit::redis::{RedisTier, RedisTierBuilder};
use actix_accountkit::shared::SharedStats;
use actix_accountkit::AccountKit;

/// Polls `$check` (an expression that may `.await`) every millisecond
/// until it holds, failing the test after `$limit`; evaluates to the time
/// it took.
#[macro_export]
macro_rules! within {
    ($limit:expr, $what:expr, $check:expr) => {{
        let start = std::time::Instant::now();
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
            actix_web::rt::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }};
}

/// A program of the Redis packages, found on PATH.
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH: the Redis tests need a real one. Install it \
                 (Debian/Ubuntu: `sudo apt-get install -y redis-server redis-tools`, \
                 macOS: `brew install redis`); .ci/run does this for CI."
            )
        })
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `check` (blocking) until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `find` (blocking) until it finds something; panics after `limit`.
pub fn within_blocking<T>(limit: Duration, what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_until(limit, what, || {
        found = find();
        found.is_some()
    });
    found.expect("found")
}

/// How a server listens.
#[derive(Clone)]
enum Mode {
    Plain,
    /// TLS only (`--port 0`), with these files.
    Tls(TlsFiles),
    /// A cluster node, its bus on this port.
    Cluster {
        bus_port: u16,
        node_timeout_ms: u64,
    },
}

/// The PEM files of a TLS server, and what its clients need.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: Vec<u8>,
    /// Whether clients must present a certificate signed by the CA.
    pub auth_clients: bool,
    /// A client certificate and key signed by the CA, PEM.
    pub client: (Vec<u8>, Vec<u8>),
}

/// A private CA, with a server certificate for 127.0.0.1 and localhost
/// and a client certificate it signed: made here (rcgen), written to a
/// temporary directory for redis-server.
pub struct Pki {
    dir: tempfile::TempDir,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    server: (String, String),
    /// A client certificate and its key, PEM.
    pub client: (String, String),
}

impl Pki {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "actix-accountkit test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(DnType::CommonName, "redis");
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &issuer).expect("certificate");
            (cert.pem(), key.serialize_pem())
        };
        let server = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);
        Self {
            dir: tempfile::tempdir().expect("a directory for the certificates"),
            ca_pem,
            server,
            client,
        }
    }

    /// The files a TLS redis-server needs (written now).
    pub fn server_files(&self, auth_clients: bool) -> TlsFiles {
        let write = |name: &str, pem: &str| {
            let path = self.dir.path().join(name);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        TlsFiles {
            cert: write("server.pem", &self.server.0),
            key: write("server.key", &self.server.1),
            ca: write("ca.pem", &self.ca_pem),
            ca_pem: self.ca_pem.clone().into_bytes(),
            auth_clients,
            client: (
                self.client.0.clone().into_bytes(),
                self.client.1.clone().into_bytes(),
            ),
        }
    }

    /// The CA certificate's file (what `ACCOUNTKIT_REDIS_CA_CERT` names).
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }
}

/// A `redis-server` on 127.0.0.1, no persistence, in a directory of its
/// own; killed on drop.
pub struct RedisServer {
    binary: PathBuf,
    pub port: u16,
    mode: Mode,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A plaintext server, started.
    pub fn start() -> Self {
        let mut server = Self::new(Mode::Plain);
        server.restart();
        server
    }

    /// A TLS-only server (no plaintext port), started.
    pub fn start_tls(files: TlsFiles) -> Self {
        let mut server = Self::new(Mode::Tls(files));
        server.restart();
        server
    }

    /// A cluster node, started, not yet part of a cluster.
    pub fn start_cluster_node(node_timeout: Duration) -> Self {
        let mut server = Self::new(Mode::Cluster {
            bus_port: free_port(),
            node_timeout_ms: node_timeout.as_millis() as u64,
        });
        server.restart();
        server
    }

    fn new(mode: Mode) -> Self {
        Self {
            binary: program("redis-server"),
            port: free_port(),
            mode,
            dir: tempfile::tempdir().expect("a directory for redis-server"),
            child: None,
        }
    }

    /// Its URL (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        match self.mode {
            Mode::Tls(_) => format!("rediss://127.0.0.1:{}/", self.port),
            _ => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The directory it runs in (cluster nodes keep `nodes.conf` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts (again) on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(&self.binary);
        command
            .current_dir(self.dir.path())
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        let port = self.port.to_string();
        match &self.mode {
            Mode::Plain => {
                command.args(["--port", &port]);
            }
            Mode::Tls(files) => {
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&files.cert)
                    .arg("--tls-key-file")
                    .arg(&files.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&files.ca)
                    .args([
                        "--tls-auth-clients",
                        if files.auth_clients { "yes" } else { "no" },
                    ]);
            }
            Mode::Cluster {
                bus_port,
                node_timeout_ms,
            } => {
                command
                    .args(["--port", &port, "--cluster-enabled", "yes"])
                    .args(["--cluster-port", &bus_port.to_string()])
                    .args(["--cluster-config-file", "nodes.conf"])
                    .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
                    // Fail over whatever the replica's data age.
                    .args(["--cluster-replica-validity-factor", "0"]);
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_until(Duration::from_secs(10), "redis-server answers PING", || {
            self.ping()
        });
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        match &self.mode {
            Mode::Tls(files) => {
                let certificates = ::redis::TlsCertificates {
                    client_tls: Some(::redis::ClientTlsConfig {
                        client_cert: files.client.0.clone(),
                        client_key: files.client.1.clone(),
                    }),
                    root_cert: Some(files.ca_pem.clone()),
                };
                ::redis::Client::build_with_tls(self.url(), certificates)
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                    .and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c))
                    .is_ok_and(|r| r == "PONG")
            }
            _ => self.command(&["PING"]).is_ok_and(|r| r == "+PONG"),
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops it with SIGSTOP (its sockets stay open, nothing answers)
    /// until the guard is dropped (SIGCONT), whatever happens meanwhile.
    pub fn stop(&self) -> Stopped {
        signal(self.pid(), "STOP");
        Stopped { pid: self.pid() }
    }

    /// One command in RESP over plaintext; the reply's first line, or the
    /// bulk string.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
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
    pub fn dump(&self) -> String {
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

/// Sends a signal through the shell's `kill` (always there, unlike
/// procps).
fn signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .expect("sh");
    assert!(status.success(), "kill -{name} {pid}");
}

/// A server stopped by [`RedisServer::stop`]; continued on drop.
pub struct Stopped {
    pid: u32,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // Not asserted: the server may already be gone.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -CONT {} 2>/dev/null", self.pid)])
            .status();
    }
}

// ---------------------------------------------------------------- clusters

/// A Redis Cluster of real `redis-server` nodes on loopback ports, made by
/// `redis-cli --cluster create`; every node killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` masters with `replicas` replicas each (a node fails over
    /// after a second without answering), ready: every node says
    /// `cluster_state:ok` and every replica's link to its master is up.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| RedisServer::start_cluster_node(Duration::from_millis(1000)))
            .collect();
        let mut create = Command::new(program("redis-cli"))
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli starts");
        let mut status = None;
        wait_until(
            Duration::from_secs(60),
            "redis-cli --cluster create",
            || {
                status = create.try_wait().expect("redis-cli");
                status.is_some()
            },
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster create: {status:?}"
        );
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(60));
        cluster
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every running node says `cluster_state:ok` and every
    /// running replica's link to its master is up.
    pub fn wait_ok(&self, limit: Duration) {
        wait_until(limit, "the cluster is ok", || {
            self.nodes.iter().filter(|n| n.is_running()).all(|node| {
                let ok = node
                    .command(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"));
                let replication = node.command(&["INFO", "replication"]).unwrap_or_default();
                ok && (!replication.contains("role:slave")
                    || replication.contains("master_link_status:up"))
            })
        });
    }

    /// The running node that serves `key` as its master now, if one does
    /// (the others answer `MOVED`, or `CLUSTERDOWN` during a failover).
    pub fn master_of(&self, key: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            self.nodes[i].is_running()
                && self.nodes[i]
                    .command(&["GET", key])
                    .is_ok_and(|reply| !reply.starts_with('-'))
        })
    }
}

// ---------------------------------------------------------------- instances

/// An instance of the app under test: a kit whose cache shares a Redis
/// tier, served over real HTTP.
pub struct Instance {
    pub kit: AccountKit,
    pub redis: RedisTier,
    pub app: Served,
}

/// The tests' tier settings: short bounds, so that failures show quickly.
pub fn quick(tier: RedisTierBuilder) -> RedisTierBuilder {
    tier.timeout(Duration::from_millis(200))
        .max_backoff(Duration::from_millis(200))
        .health_interval(Duration::from_millis(500))
}

impl Instance {
    pub fn start(emu: &Emulator, server: &RedisServer) -> Self {
        Self::start_with(emu, server, |tier| tier, CacheConfig::default())
    }

    /// An instance on `server` whose tier builder (after [`quick`]) and
    /// cache settings the test adjusts.
    pub fn start_with(
        emu: &Emulator,
        server: &RedisServer,
        tier: impl FnOnce(RedisTierBuilder) -> RedisTierBuilder,
        cache: CacheConfig,
    ) -> Self {
        let config = config(emu).build().expect("config");
        let builder = tier(quick(RedisTier::builder(server.url(), &config)));
        Self::with_tier(emu, builder, cache)
    }

    /// An instance with the tier `builder` builds.
    pub fn with_tier(emu: &Emulator, builder: RedisTierBuilder, cache: CacheConfig) -> Self {
        let config = config(emu).build().expect("config");
        let redis = builder.build().expect("redis tier");
        let kit = AccountKit::builder(config)
            .cache(cache)
            .shared_tier(redis.clone())
            .build()
            .expect("kit");
        let app = protected_app(&kit);
        Self { kit, redis, app }
    }

    /// `/me`'s status and body (the account id on a 200).
    pub async fn me_body(&self, token: &str) -> (u16, String) {
        let res = get_with(&self.app.url("/me"), Some(token)).await;
        let status = res.status().as_u16();
        (status, res.text().await.expect("body"))
    }

    pub fn stats(&self) -> SharedStats {
        self.redis.stats()
    }

    pub async fn me(&self, token: &str) -> u16 {
        get_with(&self.app.url("/me"), Some(token))
            .await
            .status()
            .as_u16()
    }

    pub async fn logout(&self, token: &str) {
        let res = http()
            .post(self.app.url("/logout"))
            .bearer_auth(token)
            .send()
            .await
            .expect("logout");
        assert_eq!(res.status(), 204);
    }
}

/// Waits until every instance's tier is (or is not) connected.
pub async fn connected(instances: &[&Instance], yes: bool) {
    within!(
        Duration::from_secs(10),
        "connection state",
        instances.iter().all(|i| i.stats().connected == yes)
    );
}

/// A plain Redis client, as anyone who can reach the server would use.
pub async fn attacker(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("attacker connects")
}

pub async fn raw<T: ::redis::FromRedisValue>(
    conn: &mut ::redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = ::redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.expect("raw command")
}

/// Lowercase hex SHA-256 of a token: its name in Redis.
pub fn hex_sha256(token: &str) -> String {
    hex::encode(actix_accountkit::hash::token_hash(token))
}

/// The tier's log lines, from every thread (the tier logs on its own).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Installs one global subscriber for this test binary (the first caller
/// does) and returns its buffer.
pub fn logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("actix_accountkit=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        captured
    })
    .clone()
}
