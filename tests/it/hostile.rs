//! Hostile input, generated: 10,000 requests with random and adversarial
//! `Authorization` headers, sent as raw bytes over TCP. Every answer must be
//! a 401 (400 for more than one credential) with the right RFC 6750 challenge (or the HTTP layer's own 400/431
//! for bytes HTTP forbids), never a 5xx; nothing that cannot be a token may
//! reach the upstream; the server keeps serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_accountkit::cache::{CacheConfig, CachedVerifier};
use actix_accountkit::types::Account;
use actix_accountkit::verify::{Refusal, Verifier};
use actix_accountkit::AccountKitAuth;
use actix_accountkit::VerifiedAccount;
use actix_web::{web, App, HttpServer};
use futures::future::{BoxFuture, FutureExt};
use proptest::prelude::*;

const GOOD: &str = "EMAWthegoodtoken0123456789";

/// The upstream: accepts one token, refuses the rest; counts calls.
struct Upstream {
    calls: Arc<AtomicUsize>,
}

impl Verifier for Upstream {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let outcome = if token == GOOD {
            Ok(Arc::new(Account::new("1000000000000001")))
        } else {
            Err(Refusal::InvalidToken { subcode: None })
        };
        async move { outcome }.boxed()
    }
}

struct Server {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

/// The protected app on its own thread and actix system (proptest is sync).
fn start() -> Server {
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream {
        calls: calls.clone(),
    };
    // Negative caching off: every well-formed token reaches the upstream,
    // so "no call" really means "refused locally".
    let cache = CachedVerifier::new(
        upstream,
        CacheConfig::builder()
            .negative_ttl(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let addr = serve(AccountKitAuth::new(cache));
    Server { addr, calls }
}

/// `auth` in front of `GET /` (the account id), on 127.0.0.1, port 0.
fn serve(auth: AccountKitAuth) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().wrap(auth.clone()).route(
                    "/",
                    web::get().to(|a: VerifiedAccount| async move { a.id().to_owned() }),
                )
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind");
            let addr = server.addrs()[0];
            let running = server.run();
            tx.send(addr).expect("report address");
            running.await
        })
    });
    rx.recv().expect("server address")
}

struct Answer {
    status: u16,
    challenge: Option<String>,
}

/// One request as raw bytes; the answer's status and challenge.
fn send(addr: SocketAddr, headers: &[Vec<u8>], path: &str) -> Answer {
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for value in headers {
        request.extend_from_slice(b"Authorization: ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer (431) and close before reading everything.
    let _ = stream.write_all(&request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let challenge = text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("www-authenticate")
            .then(|| value.trim().to_owned())
    });
    Answer { status, challenge }
}

// ---- the oracle: written independently of src/token.rs ----

fn ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if ows(*first) {
            v = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = v {
        if ows(*last) {
            v = rest
        } else {
            break;
        }
    }
    v
}

/// Bytes HTTP/1.1 forbids in a field value (RFC 9110 §5.5).
fn forbidden_in_http(v: &[u8]) -> bool {
    v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

fn is_b64token(t: &[u8]) -> bool {
    let body = t.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    !t.is_empty()
        && t.len() <= 4096
        && body > 0
        && t[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

enum Expect {
    /// No bearer credentials: the bare challenge.
    Bare,
    /// A bearer credential that cannot be a token: invalid_token, no call.
    Malformed,
    /// More than one credential (two headers, two words): 400
    /// invalid_request, no call (RFC 6750 §3.1).
    Ambiguous,
    /// A well-formed token: invalid_token after at most one call.
    Token,
}

fn expect(headers: &[Vec<u8>]) -> Expect {
    match headers {
        [] => Expect::Bare,
        [one] => {
            let v = trim(one);
            let is_bearer = v.len() >= 6
                && v[..6].eq_ignore_ascii_case(b"bearer")
                && (v.len() == 6 || ows(v[6]));
            let rest = trim(v.get(6..).unwrap_or_default());
            if !is_bearer {
                Expect::Bare
            } else if rest.iter().any(|&b| ows(b)) {
                Expect::Ambiguous
            } else if is_b64token(rest) {
                Expect::Token
            } else {
                Expect::Malformed
            }
        }
        _ => Expect::Ambiguous,
    }
}

// ---- generators ----

fn bearer_casing() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<bool>(), 6).prop_map(|upper| {
        b"bearer"
            .iter()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { *c })
            .collect()
    })
}

fn whitespace() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b' '), Just(b'\t')], 0..4)
}

fn token_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[A-Za-z0-9\\-._~+/]{1,300}=*".prop_map(String::into_bytes),
        2 => "[A-Za-z0-9]{4090,4100}".prop_map(String::into_bytes),
        2 => "\\PC{0,40}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        1 => "[A-Za-z0-9]{1,20}[ ,;\"'<>]{1,3}[A-Za-z0-9]{1,20}".prop_map(String::into_bytes),
    ]
}

fn one_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Random bytes of every length up to 64 KiB (CR/LF would frame a
        // different request: they get their own case below).
        3 => prop_oneof![
            8 => proptest::collection::vec(any::<u8>(), 0..64),
            3 => proptest::collection::vec(any::<u8>(), 0..5000),
            1 => proptest::collection::vec(any::<u8>(), 0..65536),
        ].prop_map(|v| v.into_iter().filter(|b| *b != b'\r' && *b != b'\n').collect()),
        // Bearer in any casing, whitespace games, token-ish bodies.
        6 => (whitespace(), bearer_casing(), whitespace(), token_like(), whitespace())
            .prop_map(|(a, b, c, d, e)| [a, b, c, d, e].concat()),
        // Other schemes.
        1 => "(Basic|Digest|Token|OAuth|Bearer,|Bearer=)[ ][A-Za-z0-9+/=]{0,40}".prop_map(String::into_bytes),
    ]
}

fn headers() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        1 => Just(Vec::new()),
        12 => one_value().prop_map(|v| vec![v]),
        2 => proptest::collection::vec(one_value(), 2..4),
    ]
}

fn check(server: &Server, headers: &[Vec<u8>], token_in_query: bool) -> Result<(), TestCaseError> {
    let before = server.calls.load(Ordering::SeqCst);
    // A good token in the query must not count: only the header is a source.
    let path = if token_in_query {
        format!("/?access_token={GOOD}")
    } else {
        "/".to_owned()
    };
    let answer = send(server.addr, headers, &path);
    let made = server.calls.load(Ordering::SeqCst) - before;
    prop_assert!(answer.status < 500, "server error {}", answer.status);

    if headers.iter().any(|v| forbidden_in_http(v)) {
        // Refused by the HTTP layer before our middleware, or by us.
        prop_assert!(
            matches!(answer.status, 400 | 401 | 431),
            "status {}",
            answer.status
        );
        prop_assert_eq!(made, 0);
        return Ok(());
    }
    if headers.iter().map(Vec::len).sum::<usize>() > 16 * 1024 {
        // Beyond the HTTP layer's header limit.
        prop_assert!(
            matches!(answer.status, 400 | 401 | 431),
            "status {}",
            answer.status
        );
        prop_assert!(made <= 1);
        return Ok(());
    }
    let challenge = answer.challenge.unwrap_or_default();
    let expected = expect(headers);
    let status = if matches!(expected, Expect::Ambiguous) {
        400
    } else {
        401
    };
    prop_assert_eq!(answer.status, status);
    match expected {
        Expect::Bare => {
            prop_assert_eq!(challenge.as_str(), "Bearer realm=\"accountkit\"");
            prop_assert_eq!(made, 0);
        }
        Expect::Ambiguous => {
            prop_assert!(
                challenge.contains("error=\"invalid_request\""),
                "{}",
                challenge
            );
            prop_assert_eq!(made, 0, "an ambiguous credential reached the upstream");
        }
        Expect::Malformed => {
            prop_assert!(
                challenge.contains("error=\"invalid_token\""),
                "{}",
                challenge
            );
            prop_assert_eq!(made, 0, "a malformed credential reached the upstream");
        }
        Expect::Token => {
            prop_assert!(
                challenge.contains("error=\"invalid_token\""),
                "{}",
                challenge
            );
            prop_assert!(made <= 1);
        }
    }
    Ok(())
}

#[test]
fn ten_thousand_hostile_requests_then_the_server_keeps_serving() {
    let server = start();
    let config = ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&(headers(), any::<bool>()), |(headers, in_query)| {
        check(&server, &headers, in_query)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    for value in [
        &b"Bearer \xff\xfe"[..],
        b"bEaReR    ",
        b"Basic Zm9vOmJhcg==",
    ] {
        assert_eq!(send(server.addr, &[value.to_vec()], "/").status, 401);
    }
    assert_eq!(
        send(server.addr, &[b"Bearer a b c".to_vec()], "/").status,
        400
    );
    let ok = send(server.addr, &[format!("Bearer {GOOD}").into_bytes()], "/");
    assert_eq!(ok.status, 200, "still serving");
}

/// Accepts every string it is given, as the account "1000000000000002".
struct Gullible;

impl Verifier for Gullible {
    fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        async { Ok(Arc::new(Account::new("1000000000000002"))) }.boxed()
    }
}

/// The middleware skips the syntax check when the cache remembers accepting
/// the very bytes sent; that is sound only if nothing malformed is ever
/// remembered, whoever asked the cache, and if a remembered refusal does
/// not hide the syntax error.
#[test]
fn what_the_cache_remembers_never_lets_a_malformed_token_through() {
    let cache = CachedVerifier::new(Gullible, CacheConfig::default());
    let addr = serve(AccountKitAuth::new(cache.clone()));
    let sys = actix_web::rt::System::new();
    // Asked directly (not through the middleware), with what cannot be a token.
    let direct = sys.block_on(cache.verify("ab#c"));
    assert!(
        matches!(direct, Err(Refusal::Malformed(_))),
        "the cache verified a malformed token: {direct:?}"
    );
    let bad = send(addr, &[b"Bearer ab#c".to_vec()], "/");
    assert_eq!(bad.status, 401);
    let challenge = bad.challenge.unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // A refusal remembered for two words still answers as two words.
    cache.invalidate_as_refused("two words");
    assert_eq!(send(addr, &[b"Bearer two words".to_vec()], "/").status, 400);

    // A well-formed token: verified once, then answered from memory,
    // however the header spaces it; what follows it still counts.
    for value in [
        "Bearer fine",
        "Bearer fine",
        "Bearer  fine\t",
        "bearer fine ",
    ] {
        let answer = send(addr, &[value.as_bytes().to_vec()], "/");
        assert_eq!(answer.status, 200, "{value:?}");
    }
    let stats = cache.stats();
    assert_eq!((stats.upstream_calls, stats.hits), (1, 3), "{stats:?}");
    assert_eq!(send(addr, &[b"Bearer fine x".to_vec()], "/").status, 400);
    assert_eq!(send(addr, &[b"Bearer fine\xff".to_vec()], "/").status, 401);

    // Longer than the middleware looks up unchecked: checked first, then
    // answered from memory all the same; longer than a token may be: 401.
    let long = format!("Bearer {}", "a".repeat(600));
    for _ in 0..2 {
        assert_eq!(send(addr, &[long.as_bytes().to_vec()], "/").status, 200);
    }
    let too_long = format!("Bearer {}", "a".repeat(4097));
    assert_eq!(send(addr, &[too_long.into_bytes()], "/").status, 401);
    let stats = cache.stats();
    assert_eq!((stats.upstream_calls, stats.hits), (2, 4), "{stats:?}");
}
