//! The Account Kit emulator, tested through raw HTTP only: reqwest is used as
//! a plain HTTP client and the appsecret_proof is computed here, so nothing
//! of the crate's client code is involved.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix_accountkit::emulator::{Emulator, EmulatorApp, DEFAULT_APP_ID, DEFAULT_APP_SECRET};
use serde_json::Value;

use crate::support::proof;

const APP: &str = "390265671523337";
const SECRET: &str = "9bdc9ae47c4211b9919a036c1e1bc477";
const CLIENT_TOKEN: &str = "client-token-abc";
const APP_B: &str = "1011166682335378";
const SECRET_B: &str = "secret-of-app-b";

const JSON: &str = "application/json; charset=UTF-8";
const CACHE_OK: &str = "private, no-cache, no-store, must-revalidate";

const INVALID_TOKEN: &str = r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"TRACE"}}"#;
const INVALID_CODE: &str = r#"{"error":{"message":"Invalid verification code","type":"OAuthException","code":1,"fbtrace_id":"TRACE"}}"#;
const BAD_APP: &str = r#"{"error":{"message":"Service temporarily unavailable","type":"EMApiException","is_transient":true,"code":2,"fbtrace_id":"TRACE"}}"#;
/// Graph's code 2 during an outage (modelled on Graph; see the faults docs).
const TRANSIENT_2: &str = r#"{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","is_transient":true,"code":2,"fbtrace_id":"TRACE"}}"#;
const PROOF_MISSING: &str = r#"{"error":{"message":"API calls from the server require an appsecret_proof argument.","type":"GraphMethodException","code":100,"fbtrace_id":"TRACE"}}"#;
const PROOF_INVALID: &str = r#"{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"GraphMethodException","code":100,"fbtrace_id":"TRACE"}}"#;
const APP_TOKEN_REQUIRED: &str = r#"{"error":{"message":"(#15) This method must be called with an app access_token.","type":"OAuthException","code":15,"fbtrace_id":"TRACE"}}"#;

fn app_token(id: &str, key: &str) -> String {
    format!("AA|{id}|{key}")
}

/// One HTTP answer, read completely.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The body with its `fbtrace_id` value replaced by `TRACE`, and the id.
    fn scrubbed(&self) -> (String, Option<String>) {
        const KEY: &str = "\"fbtrace_id\":\"";
        let Some(start) = self.body.find(KEY).map(|i| i + KEY.len()) else {
            return (self.body.clone(), None);
        };
        let len = self.body[start..].find('"').unwrap();
        let trace = self.body[start..start + len].to_owned();
        let scrubbed = format!("{}TRACE{}", &self.body[..start], &self.body[start + len..]);
        (scrubbed, Some(trace))
    }

    /// Exact success: status 200, exact body, success headers.
    #[track_caller]
    fn assert_ok(&self, body: &str) {
        assert_eq!((self.status, self.body.as_str()), (200, body));
        self.assert_common_headers(CACHE_OK);
        assert!(self.header("www-authenticate").is_none());
    }

    /// Exact Graph error: status, body (trace scrubbed) and error headers.
    #[track_caller]
    fn assert_error(&self, status: u16, body: &str) {
        let (scrubbed, trace) = self.scrubbed();
        assert_eq!(
            (self.status, scrubbed.as_str()),
            (status, body),
            "raw: {}",
            self.body
        );
        self.assert_common_headers("no-store");
        let trace = trace.expect("fbtrace_id in the body");
        assert_eq!(self.header("x-fb-trace-id"), Some(trace.as_str()));
        let v = self.json();
        let expected = if v["error"]["code"] == 190 {
            r#"OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token.""#.to_owned()
        } else {
            format!(
                r#"OAuth "Facebook Platform" "invalid_request" "{}""#,
                v["error"]["message"].as_str().unwrap()
            )
        };
        assert_eq!(self.header("www-authenticate"), Some(expected.as_str()));
    }

    /// A Graph error with this status, code and subcode (message not pinned).
    #[track_caller]
    fn assert_code(&self, status: u16, code: u64, subcode: Option<u64>) {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{}", self.body);
        assert_eq!(
            v["error"]["error_subcode"].as_u64(),
            subcode,
            "{}",
            self.body
        );
        self.assert_common_headers("no-store");
        assert_eq!(
            self.header("x-fb-trace-id"),
            v["error"]["fbtrace_id"].as_str()
        );
        assert!(self.header("www-authenticate").is_some());
    }

    #[track_caller]
    fn assert_common_headers(&self, cache: &str) {
        assert_eq!(self.header("content-type"), Some(JSON));
        assert_eq!(self.header("cache-control"), Some(cache));
        let trace = self.header("x-fb-trace-id").expect("x-fb-trace-id");
        assert_eq!(trace.len(), 11, "{trace}");
        assert!(trace.bytes().all(|b| b.is_ascii_alphanumeric()), "{trace}");
    }
}

/// A started emulator and a client that does not pool connections (so a
/// restart is not hidden behind a stale pooled connection).
struct Emu {
    handle: Emulator,
    http: reqwest::Client,
}

struct Login {
    code: String,
    token: String,
    id: String,
}

impl Emu {
    fn start(builder: actix_accountkit::emulator::EmulatorBuilder) -> Self {
        let handle = builder.build().expect("emulator starts");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Self { handle, http }
    }

    /// One app requiring proofs, with a client token.
    fn standard() -> Self {
        Self::start(
            Emulator::builder().app(
                EmulatorApp::new(APP, SECRET)
                    .client_token(CLIENT_TOKEN)
                    .require_appsecret_proof(true),
            ),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request reaches the emulator");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        self.send(self.http.get(self.url(path)).query(query)).await
    }

    async fn post(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        self.send(self.http.post(self.url(path)).query(query)).await
    }

    async fn delete(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        self.send(self.http.delete(self.url(path)).query(query))
            .await
    }

    async fn control(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn login(&self, body: Value) -> Login {
        let r = self.control("/_emulator/login", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        Login {
            code: s("code"),
            token: s("access_token"),
            id: s("account_id"),
        }
    }

    async fn login_phone(&self, phone: &str) -> Login {
        self.login(serde_json::json!({ "phone": phone })).await
    }

    /// `/v1.3/me` with the token and its proof under `secret`.
    async fn me(&self, token: &str, secret: &str) -> Reply {
        let p = proof(secret, token);
        self.get(
            "/v1.3/me",
            &[("access_token", token), ("appsecret_proof", &p)],
        )
        .await
    }

    async fn stats(&self) -> Value {
        self.get("/_emulator/stats", &[]).await.json()
    }
}

fn phone_body(id: &str, number: &str, cc: &str, nn: &str, app: Option<&str>) -> String {
    let application = app
        .map(|a| format!(r#","application":{{"id":"{a}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"id":"{id}","phone":{{"number":"{number}","country_prefix":"{cc}","national_number":"{nn}"}}{application}}}"#
    )
}

#[tokio::test]
async fn me_phone_body_is_byte_exact() {
    let emu = Emu::standard();
    let login = emu.login_phone("+15879994455").await;
    assert!(login.token.starts_with("EMAW") && login.token.len() > 150);
    assert!(login.token[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(login.code.starts_with("AQ") && login.code.len() > 250);
    assert_eq!(login.id.len(), 16);
    assert!(login.id.bytes().all(|b| b.is_ascii_digit()));

    let expected = phone_body(&login.id, "+15879994455", "1", "5879994455", Some(APP));
    emu.me(&login.token, SECRET).await.assert_ok(&expected);
    // Trailing slash, POST with the parameters in the query string.
    let p = proof(SECRET, &login.token);
    emu.get(
        "/v1.3/me/",
        &[("access_token", &login.token), ("appsecret_proof", &p)],
    )
    .await
    .assert_ok(&expected);
    emu.post(
        "/v1.3/me",
        &[("access_token", &login.token), ("appsecret_proof", &p)],
    )
    .await
    .assert_ok(&expected);
}

#[tokio::test]
async fn me_email_body_is_byte_exact_with_escaped_at() {
    let emu = Emu::standard();
    let login = emu
        .login(serde_json::json!({ "email": "test@example.com" }))
        .await;
    let r = emu.me(&login.token, SECRET).await;
    r.assert_ok(&format!(
        r#"{{"email":{{"address":"test\u0040example.com"}},"id":"{}","application":{{"id":"{APP}"}}}}"#,
        login.id
    ));
    assert_eq!(r.json()["email"]["address"], "test@example.com");
}

#[tokio::test]
async fn old_versions_have_no_application() {
    let emu = Emu::start(Emulator::builder());
    let login = emu.login_phone("+5511973357095").await;
    for (version, app) in [
        ("v1.0", None),
        ("v1.1", None),
        ("v1.2", Some(DEFAULT_APP_ID)),
        ("v1.3", Some(DEFAULT_APP_ID)),
    ] {
        emu.get(&format!("/{version}/me"), &[("access_token", &login.token)])
            .await
            .assert_ok(&phone_body(
                &login.id,
                "+5511973357095",
                "55",
                "11973357095",
                app,
            ));
    }
}

#[tokio::test]
async fn recorded_error_bodies() {
    let emu = Emu::standard();
    // 190: unknown token (a wrong proof does not matter: token first).
    emu.get(
        "/v1.3/me",
        &[("access_token", "EMAWgarbage"), ("appsecret_proof", "00ff")],
    )
    .await
    .assert_error(400, INVALID_TOKEN);
    emu.get("/v1.3/me", &[("access_token", "EMAWgarbage")])
        .await
        .assert_error(400, INVALID_TOKEN);

    // 1: unknown code.
    let good = app_token(APP, SECRET);
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", "AQnope"),
            ("access_token", &good),
        ],
    )
    .await
    .assert_error(400, INVALID_CODE);

    // 2: wrong secret, wrong client token, unknown app id — on every endpoint.
    let login = emu.login_phone("+15551234567").await;
    for bad in [
        app_token(APP, "wrong"),
        app_token("999", SECRET),
        "AA|nonsense".to_owned(),
    ] {
        emu.get(
            "/v1.3/access_token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &login.code),
                ("access_token", &bad),
            ],
        )
        .await
        .assert_error(500, BAD_APP);
        emu.get(&format!("/v1.3/{APP}/accounts"), &[("access_token", &bad)])
            .await
            .assert_error(500, BAD_APP);
        emu.post(
            &format!("/v1.3/{}/invalidate_all_tokens", login.id),
            &[("access_token", &bad)],
        )
        .await
        .assert_error(500, BAD_APP);
        emu.delete(&format!("/v1.3/{}", login.id), &[("access_token", &bad)])
            .await
            .assert_error(500, BAD_APP);
        emu.get("/v1.3/me", &[("access_token", &bad)])
            .await
            .assert_error(500, BAD_APP);
    }
    // The code survived all that.
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("access_token", &good),
        ],
    )
    .await
    .assert_eq_status(200);
}

impl Reply {
    #[track_caller]
    fn assert_eq_status(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
    }
}

#[tokio::test]
async fn appsecret_proof_rules() {
    let emu = Emu::standard();
    let login = emu.login_phone("+15551234567").await;
    emu.get("/v1.3/me", &[("access_token", &login.token)])
        .await
        .assert_error(400, PROOF_MISSING);
    emu.get(
        "/v1.3/me",
        &[("access_token", &login.token), ("appsecret_proof", "")],
    )
    .await
    .assert_error(400, PROOF_MISSING);
    emu.me(&login.token, "not-the-secret")
        .await
        .assert_error(400, PROOF_INVALID);
    emu.get(
        "/v1.3/me",
        &[("access_token", &login.token), ("appsecret_proof", "zz")],
    )
    .await
    .assert_error(400, PROOF_INVALID);
    // Proof of another token.
    let other = emu.login_phone("+15551234568").await;
    let p = proof(SECRET, &other.token);
    emu.get(
        "/v1.3/me",
        &[("access_token", &login.token), ("appsecret_proof", &p)],
    )
    .await
    .assert_error(400, PROOF_INVALID);
    // Uppercase hex is still the proof.
    let p = proof(SECRET, &login.token).to_uppercase();
    emu.get(
        "/v1.3/me",
        &[("access_token", &login.token), ("appsecret_proof", &p)],
    )
    .await
    .assert_eq_status(200);
    // Logout also needs the proof.
    emu.post("/v1.3/logout", &[("access_token", &login.token)])
        .await
        .assert_error(400, PROOF_MISSING);
    emu.me(&login.token, SECRET).await.assert_eq_status(200);

    // An app that does not require proofs ignores them, even wrong ones.
    let lax = Emu::start(Emulator::builder().app(EmulatorApp::new(APP, SECRET)));
    let login = lax.login_phone("+15551234567").await;
    lax.me(&login.token, "wrong").await.assert_eq_status(200);
    lax.get("/v1.3/me", &[("access_token", &login.token)])
        .await
        .assert_eq_status(200);
}

#[tokio::test]
async fn a_reset_app_secret_replaces_the_old_one() {
    let emu = Emu::standard();
    let login = emu.login_phone("+15551234567").await;
    let r = emu
        .control(
            &format!("/_emulator/apps/{APP}/secret"),
            serde_json::json!({"secret": "the-new-secret"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("the-new-secret"),
        "never echoed: {}",
        r.body
    );
    // Proofs and app tokens made with the old secret are refused...
    emu.me(&login.token, SECRET)
        .await
        .assert_error(400, PROOF_INVALID);
    emu.get(
        &format!("/v1.3/{APP}/accounts"),
        &[("access_token", &app_token(APP, SECRET))],
    )
    .await
    .assert_error(500, BAD_APP);
    // ...and the new ones accepted; the client token still works.
    emu.me(&login.token, "the-new-secret")
        .await
        .assert_eq_status(200);
    for key in ["the-new-secret", CLIENT_TOKEN] {
        emu.get(
            "/v1.3/access_token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &emu.login_phone("+15551234599").await.code),
                ("access_token", &app_token(APP, key)),
            ],
        )
        .await
        .assert_eq_status(200);
    }
    // Unknown app, empty secret, wrong method.
    let r = emu
        .control(
            "/_emulator/apps/999/secret",
            serde_json::json!({"secret": "x"}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = emu
        .control(
            &format!("/_emulator/apps/{APP}/secret"),
            serde_json::json!({"secret": ""}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn multipart_form_as_in_the_curl_example() {
    let emu = Emu::standard();
    let login = emu.login_phone("+8617512097915").await;
    let p = proof(SECRET, &login.token);
    let boundary = "------------------------d74496d66958873e";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"appsecret_proof\"\r\n\r\n{p}\r\n\
         --{boundary}--\r\n",
        login.token
    );
    let req = emu
        .http
        .post(emu.url("/v1.3/me"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    emu.send(req).await.assert_ok(&phone_body(
        &login.id,
        "+8617512097915",
        "86",
        "17512097915",
        Some(APP),
    ));

    // Multipart with a wrong proof is still checked.
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"appsecret_proof\"\r\n\r\nbeef\r\n\
         --{boundary}--\r\n",
        login.token
    );
    let req = emu
        .http
        .post(emu.url("/v1.3/me"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    emu.send(req).await.assert_error(400, PROOF_INVALID);
}

#[tokio::test]
async fn urlencoded_post() {
    let emu = Emu::standard();
    let login = emu.login_phone("+35312345678").await;
    let p = proof(SECRET, &login.token);
    let req = emu.http.post(emu.url("/v1.3/me")).form(&[
        ("access_token", login.token.as_str()),
        ("appsecret_proof", &p),
    ]);
    emu.send(req).await.assert_ok(&phone_body(
        &login.id,
        "+35312345678",
        "353",
        "12345678",
        Some(APP),
    ));
    // Logout through a form body.
    let req = emu.http.post(emu.url("/v1.3/logout")).form(&[
        ("access_token", login.token.as_str()),
        ("appsecret_proof", &p),
    ]);
    emu.send(req).await.assert_ok(r#"{"success":true}"#);
    emu.me(&login.token, SECRET)
        .await
        .assert_code(400, 190, Some(467));
}

#[tokio::test]
async fn code_exchange_is_single_use() {
    let emu = Emu::standard();
    let login = emu.login_phone("+15551234567").await;
    let secret_form = app_token(APP, SECRET);
    let q = |code: &str, app: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("access_token".to_owned(), app.to_owned()),
        ]
    };
    let r = emu
        .send(
            emu.http
                .get(emu.url("/v1.3/access_token"))
                .query(&q(&login.code, &secret_form)),
        )
        .await;
    let v = r.json();
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert_ne!(token, login.token);
    r.assert_ok(&format!(
        r#"{{"id":"{}","access_token":"{token}","token_refresh_interval_sec":2592000}}"#,
        login.id
    ));
    emu.me(&token, SECRET).await.assert_eq_status(200);

    let again = emu
        .send(
            emu.http
                .get(emu.url("/v1.3/access_token"))
                .query(&q(&login.code, &secret_form)),
        )
        .await;
    again.assert_error(
        400,
        r#"{"error":{"message":"This authorization code has been used","type":"OAuthException","code":1,"fbtrace_id":"TRACE"}}"#,
    );

    // The client-token form works for exchanges (POST too).
    let login2 = emu.login_phone("+15551234567").await;
    assert_eq!(login2.id, login.id, "same phone, same account");
    let r = emu
        .send(
            emu.http
                .post(emu.url("/v1.3/access_token/"))
                .query(&q(&login2.code, &app_token(APP, CLIENT_TOKEN))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], login.id.as_str());

    // No app token at all, or a user token in its place.
    let login3 = emu.login_phone("+15551234567").await;
    emu.send(
        emu.http
            .get(emu.url("/v1.3/access_token"))
            .query(&q(&login3.code, &login3.token)),
    )
    .await
    .assert_error(400, APP_TOKEN_REQUIRED);
    // Wrong grant type, missing code.
    let mut wrong_grant = q(&login3.code, &secret_form);
    wrong_grant[0].1 = "password".to_owned();
    emu.send(
        emu.http
            .get(emu.url("/v1.3/access_token"))
            .query(&wrong_grant),
    )
    .await
    .assert_code(400, 100, None);
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("access_token", &secret_form),
        ],
    )
    .await
    .assert_code(400, 100, None);
}

#[tokio::test]
async fn codes_expire() {
    let emu = Emu::start(
        Emulator::builder()
            .app(EmulatorApp::new(APP, SECRET))
            .code_ttl(Duration::ZERO),
    );
    let login = emu.login_phone("+15551234567").await;
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("access_token", &app_token(APP, SECRET)),
        ],
    )
    .await
    .assert_error(
        400,
        r#"{"error":{"message":"This authorization code has expired","type":"OAuthException","code":1,"fbtrace_id":"TRACE"}}"#,
    );
}

#[tokio::test]
async fn logout_invalidate_and_delete_kill_tokens() {
    let emu = Emu::standard();
    let admin = app_token(APP, SECRET);
    let a1 = emu.login_phone("+15551230001").await;
    let a2 = emu.login_phone("+15551230001").await;
    let b = emu.login_phone("+15551230002").await;

    // Logout kills one session only.
    let p = proof(SECRET, &a1.token);
    emu.post(
        "/v1.3/logout/",
        &[("access_token", &a1.token), ("appsecret_proof", &p)],
    )
    .await
    .assert_ok(r#"{"success":true}"#);
    let dead = emu.me(&a1.token, SECRET).await;
    dead.assert_code(400, 190, Some(467));
    assert_eq!(
        dead.header("www-authenticate"),
        Some(r#"OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token.""#)
    );
    emu.me(&a2.token, SECRET).await.assert_eq_status(200);
    // Logging out again: the token is dead.
    emu.post(
        "/v1.3/logout",
        &[("access_token", &a1.token), ("appsecret_proof", &p)],
    )
    .await
    .assert_code(400, 190, Some(467));

    // invalidate_all_tokens kills every session of the account.
    let a3 = emu.login_phone("+15551230001").await;
    emu.post(
        &format!("/v1.3/{}/invalidate_all_tokens", a1.id),
        &[("access_token", &admin)],
    )
    .await
    .assert_ok(r#"{"success":true}"#);
    emu.me(&a2.token, SECRET)
        .await
        .assert_code(400, 190, Some(460));
    emu.me(&a3.token, SECRET)
        .await
        .assert_code(400, 190, Some(460));
    emu.me(&b.token, SECRET).await.assert_eq_status(200);
    // A new login still works afterwards.
    let a4 = emu.login_phone("+15551230001").await;
    assert_eq!(a4.id, a1.id);
    emu.me(&a4.token, SECRET).await.assert_eq_status(200);

    // delete: tokens dead, account gone from the listing, codes useless.
    let b2 = emu.login_phone("+15551230002").await;
    emu.delete(&format!("/v1.3/{}", b.id), &[("access_token", &admin)])
        .await
        .assert_ok(r#"{"success":true}"#);
    emu.me(&b.token, SECRET)
        .await
        .assert_code(400, 190, Some(460));
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &b2.code),
            ("access_token", &admin),
        ],
    )
    .await
    .assert_error(400, INVALID_CODE);
    let listing = emu
        .get(
            &format!("/v1.3/{APP}/accounts"),
            &[("access_token", &admin)],
        )
        .await
        .json();
    let ids: Vec<&str> = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a1.id.as_str()]);
    // Deleting again, or invalidating a deleted/unknown account: code 100/33.
    emu.delete(&format!("/v1.3/{}", b.id), &[("access_token", &admin)])
        .await
        .assert_error(
            400,
            &format!(r#"{{"error":{{"message":"Unsupported delete request. Object with ID '{}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api","type":"GraphMethodException","code":100,"error_subcode":33,"fbtrace_id":"TRACE"}}}}"#, b.id),
        );
    emu.post(
        "/v1.3/1234567890123456/invalidate_all_tokens",
        &[("access_token", &admin)],
    )
    .await
    .assert_code(400, 100, Some(33));
    // The same phone logs in as a new account.
    let b3 = emu.login_phone("+15551230002").await;
    assert_ne!(b3.id, b.id);
}

#[tokio::test]
async fn admin_calls_refuse_the_client_token_form() {
    let emu = Emu::standard();
    let login = emu.login_phone("+15551234567").await;
    for token in [
        app_token(APP, CLIENT_TOKEN),
        login.token.clone(),
        String::new(),
    ] {
        emu.post(
            &format!("/v1.3/{}/invalidate_all_tokens", login.id),
            &[("access_token", &token)],
        )
        .await
        .assert_error(400, APP_TOKEN_REQUIRED);
        emu.delete(&format!("/v1.3/{}", login.id), &[("access_token", &token)])
            .await
            .assert_error(400, APP_TOKEN_REQUIRED);
        emu.get(
            &format!("/v1.3/{APP}/accounts"),
            &[("access_token", &token)],
        )
        .await
        .assert_error(400, APP_TOKEN_REQUIRED);
    }
    emu.me(&login.token, SECRET).await.assert_eq_status(200);
}

#[tokio::test]
async fn two_apps_are_separate() {
    let emu = Emu::start(
        Emulator::builder()
            .app(EmulatorApp::new(APP, SECRET).require_appsecret_proof(true))
            .app(EmulatorApp::new(APP_B, SECRET_B).require_appsecret_proof(true)),
    );
    let a = emu.login_phone("+15551234567").await;
    let b = emu
        .login(serde_json::json!({ "phone": "+15551234567", "app_id": APP_B }))
        .await;
    assert_ne!(a.id, b.id, "accounts are app-scoped");

    // B's token with A's proof is wrong; with B's proof it is B's account.
    emu.me(&b.token, SECRET)
        .await
        .assert_error(400, PROOF_INVALID);
    emu.me(&b.token, SECRET_B).await.assert_ok(&phone_body(
        &b.id,
        "+15551234567",
        "1",
        "5551234567",
        Some(APP_B),
    ));

    // A code of app B cannot be exchanged with app A's token.
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &b.code),
            ("access_token", &app_token(APP, SECRET)),
        ],
    )
    .await
    .assert_error(400, INVALID_CODE);
    // …but with B's.
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &b.code),
            ("access_token", &app_token(APP_B, SECRET_B)),
        ],
    )
    .await
    .assert_eq_status(200);

    // App A cannot touch or list app B's accounts.
    let admin_a = app_token(APP, SECRET);
    emu.delete(&format!("/v1.3/{}", b.id), &[("access_token", &admin_a)])
        .await
        .assert_code(400, 100, Some(33));
    emu.post(
        &format!("/v1.3/{}/invalidate_all_tokens", b.id),
        &[("access_token", &admin_a)],
    )
    .await
    .assert_code(400, 100, Some(33));
    emu.get(
        &format!("/v1.3/{APP_B}/accounts"),
        &[("access_token", &admin_a)],
    )
    .await
    .assert_code(400, 100, Some(33));
    emu.me(&b.token, SECRET_B).await.assert_eq_status(200);

    // Unknown app in a login.
    let r = emu
        .control(
            "/_emulator/login",
            serde_json::json!({ "phone": "+15551234567", "app_id": "42" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn accounts_paging_envelope() {
    let emu = Emu::start(
        Emulator::builder()
            .app(EmulatorApp::new(APP, SECRET))
            .seed_accounts(7),
    );
    let admin = app_token(APP, SECRET);
    let first = emu
        .get(
            &format!("/v1.3/{APP}/accounts/"),
            &[("access_token", &admin), ("limit", "3")],
        )
        .await;
    first.assert_common_headers(CACHE_OK);
    let v = first.json();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data", "paging"]
    );
    assert!(
        v["paging"].get("previous").is_none(),
        "no previous on the first page"
    );
    let next = v["paging"]["next"].as_str().unwrap();
    let expected_prefix = format!(
        "{}/v1.3/{APP}/accounts/?access_token=AA%7C{APP}%7C{SECRET}&limit=3&after=",
        emu.handle.base_url()
    );
    assert!(next.starts_with(&expected_prefix), "{next}");
    assert!(next.ends_with(v["paging"]["cursors"]["after"].as_str().unwrap()));
    // Seeded accounts: even → phone, odd → email; items have no application.
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["phone"]["number"], "+15550000000");
    assert_eq!(data[1]["email"]["address"], "user0@example.com");
    assert_eq!(data[2]["phone"]["number"], "+15550000001");
    assert!(data.iter().all(|d| d.get("application").is_none()));
    assert!(first.body.contains(r#""address":"user0\u0040example.com""#));
    assert!(first.body.starts_with(&format!(
        r#"{{"data":[{{"id":"{}","phone":{{"number":"+15550000000","country_prefix":"1","national_number":"5550000000"}}}},{{"email":"#,
        data[0]["id"].as_str().unwrap()
    )));

    // Second page: both links; previous leads back to the first page.
    let second = emu.send(emu.http.get(next)).await;
    assert_eq!(second.status, 200);
    let v2 = second.json();
    let prev = v2["paging"]["previous"].as_str().unwrap();
    assert!(prev.contains("&before="), "{prev}");
    assert!(v2["paging"]["next"].is_string());
    let back = emu.send(emu.http.get(prev)).await.json();
    assert_eq!(ids_of(&back), ids_of(&v));
    assert!(back["paging"].get("previous").is_none());

    // Last page: 1 item, previous but no next.
    let third = emu
        .send(emu.http.get(v2["paging"]["next"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(ids_of(&third).len(), 1);
    assert!(third["paging"].get("next").is_none());
    assert!(third["paging"]["previous"].is_string());

    // Default limit (25) returns all 7, no links.
    let all = emu
        .get(
            &format!("/v1.3/{APP}/accounts"),
            &[("access_token", &admin)],
        )
        .await
        .json();
    assert_eq!(ids_of(&all).len(), 7);
    assert!(all["paging"].get("next").is_none() && all["paging"].get("previous").is_none());

    // Past the end: empty data.
    let after = third["paging"]["cursors"]["after"].as_str().unwrap();
    emu.get(
        &format!("/v1.3/{APP}/accounts"),
        &[("access_token", &admin), ("after", after)],
    )
    .await
    .assert_ok(r#"{"data":[]}"#);
}

#[tokio::test]
async fn accounts_limit_and_cursor_validation() {
    let emu = Emu::start(
        Emulator::builder()
            .app(EmulatorApp::new(APP, SECRET))
            .seed_accounts(2),
    );
    let admin = app_token(APP, SECRET);
    for limit in ["0", "1001", "-1", "ten", ""] {
        emu.get(
            &format!("/v1.3/{APP}/accounts"),
            &[("access_token", &admin), ("limit", limit)],
        )
        .await
        .assert_code(400, 100, None);
    }
    for limit in ["1", "1000"] {
        emu.get(
            &format!("/v1.3/{APP}/accounts"),
            &[("access_token", &admin), ("limit", limit)],
        )
        .await
        .assert_eq_status(200);
    }
    emu.get(
        &format!("/v1.3/{APP}/accounts"),
        &[("access_token", &admin), ("after", "not a cursor")],
    )
    .await
    .assert_code(400, 100, None);
}

#[tokio::test]
async fn following_next_visits_100k_accounts_once() {
    const N: usize = 100_000;
    let emu = Emu::start(
        Emulator::builder()
            .app(EmulatorApp::new(APP, SECRET))
            .seed_accounts(N),
    );
    let mut url = format!(
        "{}/v1.3/{APP}/accounts/?access_token={}&limit=1000",
        emu.handle.base_url(),
        app_token(APP, SECRET).replace('|', "%7C")
    );
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let r = emu.send(emu.http.get(&url)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        pages += 1;
        assert_eq!(v["paging"].get("previous").is_some(), pages > 1);
        for id in ids_of(&v) {
            assert!(seen.insert(id), "an account came twice");
        }
        match v["paging"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (N, N / 1000));
}

#[tokio::test]
async fn bad_version_unknown_path_and_method() {
    let emu = Emu::standard();
    let login = emu.login_phone("+15551234567").await;
    for version in ["v1", "1.3", "v1.3x", "vX.Y", "v1.3.0"] {
        let r = emu
            .get(&format!("/{version}/me"), &[("access_token", &login.token)])
            .await;
        r.assert_error(
            400,
            &format!(
                r#"{{"error":{{"message":"Unknown path components: /{version}/me","type":"OAuthException","code":2500,"fbtrace_id":"TRACE"}}}}"#
            ),
        );
    }
    emu.get("/v1.3/me/friends", &[("access_token", &login.token)])
        .await
        .assert_error(
            400,
            r#"{"error":{"message":"Unknown path components: /friends","type":"OAuthException","code":2500,"fbtrace_id":"TRACE"}}"#,
        );
    emu.get("/", &[]).await.assert_code(400, 2500, None);
    emu.get("/v1.3/12345", &[("access_token", &app_token(APP, SECRET))])
        .await
        .assert_code(400, 100, Some(33));
    emu.delete("/v1.3/me", &[("access_token", &login.token)])
        .await
        .assert_code(400, 100, Some(33));
    emu.get("/v1.3/logout", &[("access_token", &login.token)])
        .await
        .assert_code(400, 100, Some(33));
    // Missing token on /me, and an app token on /me.
    let no_user = r#"{"error":{"message":"An active access token must be used to query information about the current user.","type":"OAuthException","code":2500,"fbtrace_id":"TRACE"}}"#;
    emu.get("/v1.3/me", &[]).await.assert_error(400, no_user);
    emu.get("/v1.3/me", &[("access_token", &app_token(APP, SECRET))])
        .await
        .assert_error(400, no_user);
}

#[tokio::test]
async fn stats_count_real_calls_and_reset() {
    let emu = Emu::standard();
    let zero = serde_json::json!({"me":0,"access_token":0,"logout":0,"invalidate_all_tokens":0,"delete":0,"accounts":0});
    assert_eq!(emu.stats().await, zero);
    let login = emu.login_phone("+15551234567").await;
    let admin = app_token(APP, SECRET);
    emu.me(&login.token, SECRET).await;
    emu.get("/v1.3/me", &[("access_token", "bad")]).await;
    emu.get(
        "/v1.3/access_token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("access_token", &admin),
        ],
    )
    .await;
    emu.post(
        &format!("/v1.3/{}/invalidate_all_tokens", login.id),
        &[("access_token", &admin)],
    )
    .await;
    emu.post("/v1.3/logout", &[("access_token", "x")]).await;
    emu.get(
        &format!("/v1.3/{APP}/accounts"),
        &[("access_token", &admin)],
    )
    .await;
    emu.delete(&format!("/v1.3/{}", login.id), &[("access_token", &admin)])
        .await;
    emu.get("/v1.3/nothing/here", &[]).await;
    let r = emu.get("/_emulator/stats", &[]).await;
    assert_eq!(
        r.body,
        r#"{"me":2,"access_token":1,"logout":1,"invalidate_all_tokens":1,"delete":1,"accounts":1}"#
    );
    let reset = emu.send(emu.http.delete(emu.url("/_emulator/stats"))).await;
    assert_eq!(reset.status, 200);
    assert_eq!(emu.stats().await, zero);
}

async fn set_fault(emu: &Emu, fault: Value) -> Value {
    let r = emu.control("/_emulator/faults", fault).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn faults_status_body_times_after_and_clear() {
    let emu = Emu::start(Emulator::builder().app(EmulatorApp::new(APP, SECRET)));
    let login = emu.login_phone("+15551234567").await;
    let query = [("access_token", login.token.as_str())];
    let me = || emu.get("/v1.3/me", &query);

    let active = set_fault(
        &emu,
        serde_json::json!({"status": 502, "body": "<html>bad gateway</html>", "times": 2, "after": 1}),
    )
    .await;
    assert_eq!(
        active,
        serde_json::json!({"status": 502, "body": "<html>bad gateway</html>", "times": 2, "after": 1})
    );
    me().await.assert_eq_status(200); // skipped by "after"
    for _ in 0..2 {
        let r = me().await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (502, "<html>bad gateway</html>")
        );
        assert!(r.header("x-fb-trace-id").is_some());
    }
    me().await.assert_eq_status(200); // "times" used up
    assert_eq!(emu.stats().await["me"], 4, "faulted calls are counted");

    // Status without body: a fitting Graph error (5xx: Graph's transient
    // code 2); unlimited until cleared.
    set_fault(&emu, serde_json::json!({"status": 503})).await;
    for _ in 0..3 {
        me().await.assert_error(503, TRANSIENT_2);
    }
    // Control endpoints are not faulted.
    assert_eq!(emu.stats().await["me"], 7);
    set_fault(&emu, serde_json::json!({"status": 429, "times": 1})).await;
    me().await.assert_error(
        429,
        r#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","is_transient":true,"code":4,"fbtrace_id":"TRACE"}}"#,
    );
    me().await.assert_eq_status(200);

    set_fault(&emu, serde_json::json!({"status": 500})).await;
    assert_eq!(
        set_fault(&emu, serde_json::json!({})).await,
        serde_json::json!({})
    );
    me().await.assert_eq_status(200);

    // Latency only: the call is slow and then answered normally.
    set_fault(&emu, serde_json::json!({"latency_ms": 300, "times": 1})).await;
    let t = Instant::now();
    me().await.assert_eq_status(200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    // A faulted call has no effect: the code is not consumed.
    set_fault(&emu, serde_json::json!({"status": 500, "times": 1})).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", login.code.as_str()),
        ("access_token", &app_token(APP, SECRET)),
    ];
    emu.get("/v1.3/access_token", &exchange)
        .await
        .assert_code(500, 2, None);
    emu.get("/v1.3/access_token", &exchange)
        .await
        .assert_eq_status(200);

    // Bad fault specs.
    for bad in [
        serde_json::json!({"status": 99}),
        serde_json::json!({"stauts": 500}),
        serde_json::json!("nope"),
        serde_json::json!({"code2": "sometimes"}),
        serde_json::json!({"code2": "transient", "status": 200}),
        serde_json::json!({"code2": "transient", "body": "x"}),
        serde_json::json!({"code2": "transient", "calls": []}),
        serde_json::json!({"code2": "transient", "calls": ["profile"]}),
    ] {
        let r = emu.control("/_emulator/faults", bad).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
}

/// The two meanings of code 2, on request, checked byte for byte over raw
/// HTTP (not through the crate's client, so that the client and the
/// emulator cannot merely agree with each other).
#[tokio::test]
async fn faults_give_either_meaning_of_code_2() {
    let emu = Emu::start(Emulator::builder().app(EmulatorApp::new(APP, SECRET)));
    let login = emu.login_phone("+15551234567").await;
    let query = [("access_token", login.token.as_str())];
    let me = || emu.get("/v1.3/me", &query);
    let admin_token = app_token(APP, SECRET);
    let admin = [("access_token", admin_token.as_str())];
    let listing = format!("/v1.3/{APP}/accounts");
    let accounts = || emu.get(&listing, &admin);

    // Transient by default: Graph's outage answer, HTTP 500.
    let active = set_fault(&emu, serde_json::json!({"code2": "transient", "times": 1})).await;
    assert_eq!(
        active,
        serde_json::json!({"code2": "transient", "times": 1})
    );
    me().await.assert_error(500, TRANSIENT_2);
    me().await.assert_eq_status(200);

    // A misconfiguration when asked: exactly what Account Kit answered to a
    // wrong app secret, which the emulator also gives unfaulted.
    set_fault(
        &emu,
        serde_json::json!({"code2": "misconfigured", "times": 1}),
    )
    .await;
    accounts().await.assert_error(500, BAD_APP);
    emu.get(
        &format!("/v1.3/{APP}/accounts"),
        &[("access_token", &app_token(APP, "not-the-secret"))],
    )
    .await
    .assert_error(500, BAD_APP);
    accounts().await.assert_eq_status(200);

    // Either with another status.
    set_fault(
        &emu,
        serde_json::json!({"code2": "transient", "status": 503, "times": 1}),
    )
    .await;
    me().await.assert_error(503, TRANSIENT_2);
    set_fault(
        &emu,
        serde_json::json!({"code2": "misconfigured", "status": 400, "times": 1}),
    )
    .await;
    me().await.assert_error(400, BAD_APP);

    // Limited to some calls: the others pass and do not use the budget.
    set_fault(
        &emu,
        serde_json::json!({"code2": "transient", "calls": ["me"], "after": 1, "times": 2}),
    )
    .await;
    accounts().await.assert_eq_status(200);
    me().await.assert_eq_status(200); // "after"
    accounts().await.assert_eq_status(200);
    me().await.assert_error(500, TRANSIENT_2);
    emu.get("/v1.3/nothing/here", &[])
        .await
        .assert_code(400, 2500, None);
    me().await.assert_error(500, TRANSIENT_2);
    me().await.assert_eq_status(200); // "times" used up
    assert_eq!(
        emu.get("/_emulator/faults", &[]).await.json(),
        serde_json::json!({})
    );
    let stats = emu.stats().await;
    assert_eq!(
        (stats["me"].as_u64(), stats["accounts"].as_u64()),
        (Some(8), Some(5))
    );
}

#[tokio::test]
async fn login_derives_country_prefixes() {
    let emu = Emu::start(Emulator::builder());
    for (phone, cc, nn) in [
        ("+15551234567", "1", "5551234567"),
        ("+79161234567", "7", "9161234567"),
        ("+5511973357095", "55", "11973357095"),
        ("+447700900123", "44", "7700900123"),
        ("+8617512097915", "86", "17512097915"),
        ("+35312345678", "353", "12345678"),
        ("+380441234567", "380", "441234567"),
        ("+9647701234567", "964", "7701234567"),
    ] {
        let login = emu.login_phone(phone).await;
        emu.get("/v1.3/me", &[("access_token", &login.token)])
            .await
            .assert_ok(&phone_body(&login.id, phone, cc, nn, Some(DEFAULT_APP_ID)));
    }
    for bad in [
        serde_json::json!({"phone": "15551234567"}),
        serde_json::json!({"phone": "+1555abc4567"}),
        serde_json::json!({"phone": "+2591234567"}),
        serde_json::json!({"phone": "+1234567890123456"}),
        serde_json::json!({"email": "not-an-email"}),
        serde_json::json!({"phone": "+15551234567", "email": "a@example.com"}),
        serde_json::json!({}),
        serde_json::json!({"phone": "+15551234567", "extra": 1}),
    ] {
        let r = emu.control("/_emulator/login", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
    // Same email, same account.
    let a = emu
        .login(serde_json::json!({"email": "a@example.com"}))
        .await;
    let b = emu
        .login(serde_json::json!({"email": "a@example.com"}))
        .await;
    assert_eq!(a.id, b.id);
    assert_ne!(a.token, b.token);
}

#[tokio::test]
async fn stop_and_restart_keep_state() {
    let emu = Emu::standard();
    let addr = emu.handle.addr();
    assert_eq!(emu.handle.base_url(), format!("http://{addr}"));
    let login = emu.login_phone("+15551234567").await;
    emu.me(&login.token, SECRET).await.assert_eq_status(200);

    emu.handle.stop();
    assert!(std::net::TcpStream::connect(addr).is_err(), "port closed");
    assert!(emu.http.get(emu.url("/v1.3/me")).send().await.is_err());
    emu.handle.stop(); // idempotent

    emu.handle.restart().unwrap();
    assert_eq!(emu.handle.addr(), addr);
    emu.me(&login.token, SECRET).await.assert_eq_status(200);
    assert_eq!(emu.stats().await["me"], 2, "stats survive too");
    // Restart while running.
    emu.handle.restart().unwrap();
    emu.me(&login.token, SECRET).await.assert_eq_status(200);
}

#[actix_rt::test]
async fn runs_under_an_actix_runtime_too() {
    let emu = Emu::start(Emulator::builder());
    let login = emu.login_phone("+15551234567").await;
    emu.get("/v1.3/me", &[("access_token", &login.token)])
        .await
        .assert_eq_status(200);
    let admin = app_token(DEFAULT_APP_ID, DEFAULT_APP_SECRET);
    emu.get(
        &format!("/v1.3/{DEFAULT_APP_ID}/accounts"),
        &[("access_token", &admin)],
    )
    .await
    .assert_eq_status(200);
}

#[test]
fn works_from_plain_sync_code_and_debug_hides_secrets() {
    let app = EmulatorApp::new(APP, SECRET)
        .client_token(CLIENT_TOKEN)
        .require_appsecret_proof(true);
    let debug = format!("{app:?}");
    assert!(debug.contains(APP));
    assert!(
        !debug.contains(SECRET) && !debug.contains(CLIENT_TOKEN),
        "{debug}"
    );
    let builder = Emulator::builder().app(app);
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains(CLIENT_TOKEN),
        "{debug}"
    );
    let handle = builder.build().unwrap();
    let debug = format!("{handle:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains(CLIENT_TOKEN),
        "{debug}"
    );
    // The socket accepts as soon as start returns.
    let stream = std::net::TcpStream::connect(handle.addr());
    assert!(stream.is_ok());
    drop(handle);
}

#[test]
fn duplicate_apps_are_refused() {
    let err = Emulator::builder()
        .app(EmulatorApp::new(APP, SECRET))
        .app(EmulatorApp::new(APP, "other"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
