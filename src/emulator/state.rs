//! The emulator's world: apps, accounts, user access tokens and
//! authorization codes.
//!
//! Everything lives behind one `parking_lot::Mutex` in [`Shared`]; every
//! operation is a few map lookups, and no guard is ever held across an
//! `.await`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::distr::{Alphanumeric, SampleString};
use rand::RngExt;

use super::faults::Faults;
use super::phone::Phone;
use super::reply::{json_str, GraphError};
use super::EmulatorApp;

/// How a user logged in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Login {
    /// A phone login.
    Phone(Phone),
    /// An email login (address as given).
    Email(String),
}

#[derive(Debug)]
struct Account {
    app: usize,
    seq: u64,
    login: Login,
    /// Every token ever minted for the account (live or not).
    tokens: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenState {
    Live,
    /// Dead, with the Graph `error_subcode` to report.
    Dead(u32),
}

#[derive(Debug)]
struct Token {
    account_id: String,
    app: usize,
    state: TokenState,
}

#[derive(Debug)]
struct Code {
    account_id: String,
    app: usize,
    issued: Instant,
    used: bool,
}

#[derive(Debug)]
struct AppState {
    app: EmulatorApp,
    next_seq: u64,
    /// Listing order: creation sequence number → account id.
    listing: BTreeMap<u64, String>,
    by_login: HashMap<Login, String>,
}

/// Subcode for tokens killed by `logout`.
pub(crate) const SUBCODE_LOGGED_OUT: u32 = 467;
/// Subcode for tokens killed by `invalidate_all_tokens` or account deletion.
pub(crate) const SUBCODE_INVALIDATED: u32 = 460;

/// What an `access_token` parameter of the form `AA|id|x` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppCredential {
    /// Not of the `AA|…|…` form at all.
    NotAppToken,
    /// `AA|…|…` with an unknown app id or a wrong secret/client token.
    Wrong,
    /// `AA|id|app_secret`.
    Secret(usize),
    /// `AA|id|client_token`.
    ClientToken(usize),
}

/// Where a page of the account listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageFrom {
    /// The first page.
    Start,
    /// Items strictly after this sequence number.
    After(u64),
    /// Items strictly before this sequence number.
    Before(u64),
}

/// One page of the account listing.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// `(seq, json)` of each item, in listing order.
    pub(crate) items: Vec<(u64, String)>,
    pub(crate) has_previous: bool,
    pub(crate) has_next: bool,
}

/// The mutable world.
#[derive(Debug)]
pub(crate) struct State {
    apps: Vec<AppState>,
    accounts: HashMap<String, Account>,
    tokens: HashMap<String, Token>,
    codes: HashMap<String, Code>,
    code_ttl: Duration,
}

/// Real-API call counters (see `/_emulator/stats`).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) me: AtomicU64,
    pub(crate) access_token: AtomicU64,
    pub(crate) logout: AtomicU64,
    pub(crate) invalidate_all_tokens: AtomicU64,
    pub(crate) delete: AtomicU64,
    pub(crate) accounts: AtomicU64,
}

impl Stats {
    fn all(&self) -> [(&'static str, &AtomicU64); 6] {
        [
            ("me", &self.me),
            ("access_token", &self.access_token),
            ("logout", &self.logout),
            ("invalidate_all_tokens", &self.invalidate_all_tokens),
            ("delete", &self.delete),
            ("accounts", &self.accounts),
        ]
    }

    /// `{"me":N,…}` in a fixed key order.
    pub(crate) fn to_json(&self) -> String {
        let parts: Vec<String> = self
            .all()
            .iter()
            .map(|(k, v)| format!("\"{k}\":{}", v.load(Ordering::Relaxed)))
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    /// Sets every counter to zero.
    pub(crate) fn reset(&self) {
        for (_, v) in self.all() {
            v.store(0, Ordering::Relaxed);
        }
    }
}

/// Everything the server threads share; outlives restarts.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) stats: Stats,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) base_url: String,
}

fn random_id() -> String {
    rand::rng()
        .random_range(1_000_000_000_000_000u64..10_000_000_000_000_000u64)
        .to_string()
}

fn new_token() -> String {
    format!("EMAW{}", Alphanumeric.sample_string(&mut rand::rng(), 180))
}

fn new_code() -> String {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..280)
        .map(|_| char::from(URL_SAFE[rng.random_range(0..URL_SAFE.len())]))
        .collect();
    format!("AQ{tail}")
}

/// The deterministic identity of seeded account `i`: even → phone, odd → email.
pub(crate) fn seed_login(i: usize) -> Login {
    if i.is_multiple_of(2) {
        Login::Phone(Phone {
            country_prefix: "1".to_owned(),
            national_number: format!("555{:07}", i / 2),
        })
    } else {
        Login::Email(format!("user{}@example.com", i / 2))
    }
}

impl State {
    pub(crate) fn new(apps: Vec<EmulatorApp>, code_ttl: Duration) -> Self {
        Self {
            apps: apps
                .into_iter()
                .map(|app| AppState {
                    app,
                    next_seq: 1,
                    listing: BTreeMap::new(),
                    by_login: HashMap::new(),
                })
                .collect(),
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            codes: HashMap::new(),
            code_ttl,
        }
    }

    /// Index of the app with this id.
    pub(crate) fn app_index(&self, id: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.app.id == id)
    }

    /// Replaces an app's Account Kit app secret (the dashboard's "Reset"):
    /// from now on app tokens and proofs need the new one. `false` if there
    /// is no such app.
    pub(crate) fn set_app_secret(&mut self, id: &str, secret: String) -> bool {
        match self.apps.iter_mut().find(|a| a.app.id == id) {
            Some(app) => {
                app.app.secret = secret;
                true
            }
            None => false,
        }
    }

    /// The app at an index returned by this state.
    pub(crate) fn app(&self, idx: usize) -> Option<&EmulatorApp> {
        self.apps.get(idx).map(|a| &a.app)
    }

    /// Finds or creates the account of `login` in app `app`.
    pub(crate) fn login(&mut self, app: usize, login: Login) -> Option<String> {
        let app_state = self.apps.get_mut(app)?;
        if let Some(id) = app_state.by_login.get(&login) {
            return Some(id.clone());
        }
        let mut id = random_id();
        while self.accounts.contains_key(&id) {
            id = random_id();
        }
        let seq = app_state.next_seq;
        app_state.next_seq += 1;
        app_state.listing.insert(seq, id.clone());
        app_state.by_login.insert(login.clone(), id.clone());
        self.accounts.insert(
            id.clone(),
            Account {
                app,
                seq,
                login,
                tokens: Vec::new(),
            },
        );
        Some(id)
    }

    /// A new live user access token for an existing account.
    pub(crate) fn mint_token(&mut self, account_id: &str) -> Option<String> {
        let account = self.accounts.get_mut(account_id)?;
        let mut token = new_token();
        while self.tokens.contains_key(&token) {
            token = new_token();
        }
        account.tokens.push(token.clone());
        self.tokens.insert(
            token.clone(),
            Token {
                account_id: account_id.to_owned(),
                app: account.app,
                state: TokenState::Live,
            },
        );
        Some(token)
    }

    /// A new authorization code for an existing account.
    pub(crate) fn mint_code(&mut self, account_id: &str) -> Option<String> {
        let app = self.accounts.get(account_id)?.app;
        let code = new_code();
        self.codes.insert(
            code.clone(),
            Code {
                account_id: account_id.to_owned(),
                app,
                issued: Instant::now(),
                used: false,
            },
        );
        Some(code)
    }

    /// Classifies an `access_token` parameter as an app token.
    pub(crate) fn app_credential(&self, token: &str) -> AppCredential {
        let Some(rest) = token.strip_prefix("AA|") else {
            return AppCredential::NotAppToken;
        };
        let Some((id, key)) = rest.split_once('|') else {
            return AppCredential::Wrong;
        };
        let Some(idx) = self.app_index(id) else {
            return AppCredential::Wrong;
        };
        let app = &self.apps[idx].app;
        // Both compared in constant time, and both always compared.
        let is_secret = super::proof::same_secret(key, &app.secret);
        let is_client_token = app
            .client_token
            .as_deref()
            .is_some_and(|t| super::proof::same_secret(key, t));
        if is_secret {
            AppCredential::Secret(idx)
        } else if is_client_token {
            AppCredential::ClientToken(idx)
        } else {
            AppCredential::Wrong
        }
    }

    /// The app index and account id of a live user token, or its Graph error.
    pub(crate) fn user_token(&self, token: &str) -> Result<(usize, String), GraphError> {
        match self.tokens.get(token) {
            None => Err(GraphError::invalid_token()),
            Some(t) => match t.state {
                TokenState::Live => Ok((t.app, t.account_id.clone())),
                TokenState::Dead(sub) => Err(GraphError::dead_token(sub)),
            },
        }
    }

    /// Exchanges a code of app `app` for a fresh token: `(account_id, token)`.
    pub(crate) fn exchange(
        &mut self,
        app: usize,
        code: &str,
    ) -> Result<(String, String), GraphError> {
        let ttl = self.code_ttl;
        let record = match self.codes.get_mut(code) {
            Some(c) if c.app == app => c,
            _ => return Err(GraphError::invalid_code()),
        };
        if record.used {
            return Err(GraphError::code_used());
        }
        if record.issued.elapsed() >= ttl {
            return Err(GraphError::code_expired());
        }
        record.used = true;
        let account_id = record.account_id.clone();
        let token = self
            .mint_token(&account_id)
            .ok_or_else(GraphError::invalid_code)?;
        Ok((account_id, token))
    }

    /// Kills one token (logout).
    pub(crate) fn logout(&mut self, token: &str) {
        if let Some(t) = self.tokens.get_mut(token) {
            t.state = TokenState::Dead(SUBCODE_LOGGED_OUT);
        }
    }

    fn kill_all(&mut self, account_id: &str) {
        if let Some(account) = self.accounts.get(account_id) {
            for token in &account.tokens {
                if let Some(t) = self.tokens.get_mut(token) {
                    if t.state == TokenState::Live {
                        t.state = TokenState::Dead(SUBCODE_INVALIDATED);
                    }
                }
            }
        }
    }

    fn owns(&self, app: usize, account_id: &str) -> bool {
        self.accounts.get(account_id).is_some_and(|a| a.app == app)
    }

    /// Kills every token of an account of app `app`; false if no such account.
    pub(crate) fn invalidate_all(&mut self, app: usize, account_id: &str) -> bool {
        if !self.owns(app, account_id) {
            return false;
        }
        self.kill_all(account_id);
        true
    }

    /// Deletes an account of app `app` and kills its tokens; false if no such account.
    pub(crate) fn delete(&mut self, app: usize, account_id: &str) -> bool {
        if !self.owns(app, account_id) {
            return false;
        }
        self.kill_all(account_id);
        if let Some(account) = self.accounts.remove(account_id) {
            if let Some(a) = self.apps.get_mut(account.app) {
                a.listing.remove(&account.seq);
                a.by_login.remove(&account.login);
            }
        }
        true
    }

    /// The `/me` (or listing item) JSON of an account, with the
    /// `application` object when `application` is given.
    pub(crate) fn account_json(
        &self,
        account_id: &str,
        application: Option<&str>,
    ) -> Option<String> {
        let account = self.accounts.get(account_id)?;
        let app = application
            .map(|id| format!(",\"application\":{{\"id\":{}}}", json_str(id)))
            .unwrap_or_default();
        let id = json_str(account_id);
        Some(match &account.login {
            Login::Phone(p) => format!(
                "{{\"id\":{id},\"phone\":{{\"number\":{},\"country_prefix\":{},\"national_number\":{}}}{app}}}",
                json_str(&p.number()),
                json_str(&p.country_prefix),
                json_str(&p.national_number),
            ),
            Login::Email(e) => format!(
                "{{\"email\":{{\"address\":{}}},\"id\":{id}{app}}}",
                json_str(e)
            ),
        })
    }

    /// One page of app `app`'s listing: O(log n + limit).
    pub(crate) fn page(&self, app: usize, from: PageFrom, limit: usize) -> Page {
        let Some(listing) = self.apps.get(app).map(|a| &a.listing) else {
            return Page::default();
        };
        let mut seqs: Vec<u64>;
        let (has_previous, has_next);
        match from {
            PageFrom::Start | PageFrom::After(_) => {
                let lower = match from {
                    PageFrom::After(s) => Bound::Excluded(s),
                    _ => Bound::Unbounded,
                };
                seqs = listing
                    .range((lower, Bound::Unbounded))
                    .take(limit + 1)
                    .map(|(s, _)| *s)
                    .collect();
                has_next = seqs.len() > limit;
                seqs.truncate(limit);
                has_previous = seqs
                    .first()
                    .is_some_and(|first| listing.range(..*first).next_back().is_some());
            }
            PageFrom::Before(b) => {
                seqs = listing
                    .range(..b)
                    .rev()
                    .take(limit + 1)
                    .map(|(s, _)| *s)
                    .collect();
                has_previous = seqs.len() > limit;
                seqs.truncate(limit);
                seqs.reverse();
                has_next = seqs.last().is_some_and(|last| {
                    listing
                        .range((Bound::Excluded(*last), Bound::Unbounded))
                        .next()
                        .is_some()
                });
            }
        }
        let items = seqs
            .into_iter()
            .filter_map(|s| {
                let id = listing.get(&s)?;
                Some((s, self.account_json(id, None)?))
            })
            .collect();
        Page {
            items,
            has_previous,
            has_next,
        }
    }
}

impl Shared {
    pub(crate) fn new(state: State, base_url: String) -> Self {
        Self {
            state: Mutex::new(state),
            stats: Stats::default(),
            faults: Mutex::new(Faults::default()),
            base_url,
        }
    }
}

/// Opaque listing cursors: URL-safe base64 (no padding) of `seq:<n>`.
pub(crate) mod cursor {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// The cursor of a sequence number.
    pub(crate) fn encode(seq: u64) -> String {
        let raw = format!("seq:{seq}");
        let bytes = raw.as_bytes();
        let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET[idx]));
            }
        }
        out
    }

    /// The sequence number of a cursor made by [`encode`].
    pub(crate) fn decode(cursor: &str) -> Option<u64> {
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut bytes = Vec::with_capacity(cursor.len());
        for c in cursor.bytes() {
            let v = ALPHABET.iter().position(|a| *a == c)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                bytes.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        let text = String::from_utf8(bytes).ok()?;
        let n = text.strip_prefix("seq:")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips() {
            for n in [0, 1, 9, 10, 99, 12345, 100_000, u64::MAX] {
                let c = super::encode(n);
                assert!(c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                assert_eq!(super::decode(&c), Some(n), "{c}");
            }
            assert_eq!(super::decode("!!"), None);
            assert_eq!(super::decode(""), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(n: usize) -> State {
        let mut s = State::new(vec![EmulatorApp::new("1", "s")], Duration::from_secs(60));
        for i in 0..n {
            s.login(0, seed_login(i));
        }
        s
    }

    #[test]
    fn pages_forward_and_back() {
        let s = world(5);
        let p = s.page(0, PageFrom::Start, 2);
        assert_eq!(p.items.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2]);
        assert!(!p.has_previous && p.has_next);
        let p = s.page(0, PageFrom::After(4), 2);
        assert_eq!(p.items.iter().map(|i| i.0).collect::<Vec<_>>(), [5]);
        assert!(p.has_previous && !p.has_next);
        let p = s.page(0, PageFrom::Before(5), 2);
        assert_eq!(p.items.iter().map(|i| i.0).collect::<Vec<_>>(), [3, 4]);
        assert!(p.has_previous && p.has_next);
        let p = s.page(0, PageFrom::Before(3), 5);
        assert_eq!(p.items.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2]);
        assert!(!p.has_previous && p.has_next);
    }

    #[test]
    fn same_login_same_account() {
        let mut s = world(0);
        let a = s.login(0, seed_login(3));
        assert_eq!(a, s.login(0, seed_login(3)));
        assert_ne!(a, s.login(0, seed_login(4)));
    }
}
