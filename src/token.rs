//! Finding the user access token in a request, and the local syntax check
//! that refuses what cannot be a token without asking Account Kit.
//!
//! The default source is `Authorization: Bearer <token>` (RFC 6750 §2.1),
//! with the scheme matched case-insensitively (RFC 9110 §11.1). A cookie, a
//! query parameter or a function of your own can be configured instead; the
//! sources are all looked at: a token sent by more than one of them, a
//! repeated parameter or cookie, or two `Authorization` headers is refused as
//! [`Malformed::Ambiguous`] (RFC 6750 §3.1: "uses more than one method for
//! including an access token", `invalid_request`, 400).

use std::fmt;
use std::sync::Arc;

use actix_web::http::header::{HeaderValue, AUTHORIZATION};
use actix_web::HttpRequest;

/// The longest token accepted. Recorded tokens were 164–205 characters;
/// the bound is generous on purpose.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The longest token the middleware looks up before its syntax check
/// ([`Located::unchecked_bytes`]); a longer one is checked first. Well
/// above the recorded tokens, and far enough below [`MAX_TOKEN_LEN`] that
/// junk cannot make a request hash 4 KiB and lock a shard before it is
/// refused.
const RECALL_MAX_LEN: usize = 512;

/// Why a presented token was refused without an upstream call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The token is empty (`Authorization: Bearer` alone, an empty cookie...).
    #[error("the access token is empty")]
    Empty,
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the access token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// A character outside the RFC 6750 `b64token` alphabet.
    #[error("the access token has characters outside the token alphabet")]
    BadCharacter,
    /// More than one token: two `Authorization` headers, two words after
    /// `Bearer`, a repeated parameter or cookie, or a token sent by more than
    /// one of the configured sources. RFC 6750 §3.1 calls this
    /// `invalid_request` (400), not `invalid_token`.
    #[error("more than one access token was sent")]
    Ambiguous,
}

/// Checks the RFC 6750 `b64token` syntax:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`,
/// at most [`MAX_TOKEN_LEN`] bytes.
///
/// ```
/// use actix_accountkit::token::{check_token, Malformed};
/// assert!(check_token("EMAWdeadbeef").is_ok());
/// assert_eq!(check_token(""), Err(Malformed::Empty));
/// assert_eq!(check_token("a b"), Err(Malformed::BadCharacter));
/// ```
pub fn check_token(token: &str) -> Result<(), Malformed> {
    let bytes = token.as_bytes();
    let (end, well_formed) = scan_word(bytes, 0);
    if end != bytes.len() {
        return Err(Malformed::BadCharacter); // whitespace inside
    }
    verdict(bytes.len(), well_formed)
}

/// Space or horizontal tab: what may separate the scheme from the token.
#[inline(always)]
const fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether `b` is a `b64token` character other than the `=` padding:
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`. Written without
/// branches (`|`, not `||`; no table), so that [`token_run`] vectorizes.
#[inline(always)]
const fn is_token_char(b: u8) -> bool {
    let digit = b.wrapping_sub(b'0') < 10;
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let dash_dot_slash = b.wrapping_sub(b'-') < 3;
    digit | letter | dash_dot_slash | (b == b'_') | (b == b'~') | (b == b'+')
}

/// How many bytes at the start of `bytes` are token characters.
///
/// Recorded tokens are 164-205 of them, so this loop is most of the
/// parser's time: 16 bytes are tested at a time without a branch per byte
/// (the compiler turns it into SIMD compares), and only the chunk where the
/// run ends is scanned byte by byte.
fn token_run(bytes: &[u8]) -> usize {
    const LANES: usize = 16;
    let mut done = 0;
    for chunk in bytes.chunks_exact(LANES) {
        if !chunk.iter().fold(true, |all, &b| all & is_token_char(b)) {
            break;
        }
        done += LANES;
    }
    let rest = &bytes[done..];
    done + rest
        .iter()
        .position(|&b| !is_token_char(b))
        .unwrap_or(rest.len())
}

/// Scans from `from` to the next space or tab (or the end): returns where
/// the word ends and whether it is `1*token-char *"="`.
fn scan_word(bytes: &[u8], from: usize) -> (usize, bool) {
    let rest = bytes.get(from..).unwrap_or_default();
    let body = token_run(rest);
    let padded = body + rest[body..].iter().take_while(|&&b| b == b'=').count();
    let end = padded
        + rest[padded..]
            .iter()
            .position(|&b| is_space(b))
            .unwrap_or(rest.len() - padded);
    (from + end, body > 0 && end == padded)
}

fn verdict(len: usize, well_formed: bool) -> Result<(), Malformed> {
    if len == 0 {
        Err(Malformed::Empty)
    } else if len > MAX_TOKEN_LEN {
        Err(Malformed::TooLong)
    } else if !well_formed {
        Err(Malformed::BadCharacter)
    } else {
        Ok(())
    }
}

fn skip_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| is_space(b)) {
        at += 1;
    }
    at
}

/// The token a request carried, kept without copying where possible (a
/// clone of the header value shares its bytes). `Debug` hides it.
#[derive(Clone)]
pub struct RequestToken {
    value: HeaderValue,
    start: usize,
    end: usize,
}

impl RequestToken {
    /// A token from an owned string (already syntax-checked by the caller).
    pub(crate) fn owned(token: &str) -> Option<Self> {
        HeaderValue::from_str(token).ok().map(|value| Self {
            value,
            start: 0,
            end: token.len(),
        })
    }

    /// The token. Do not log it.
    pub fn expose_secret(&self) -> &str {
        // Checked ASCII, or (on a hit, see `Verifier::recall`) bytes whose
        // SHA-256 is that of a checked token: an empty string is reachable
        // only through a `recall` that breaks its contract, and is no risk.
        self.value
            .as_bytes()
            .get(self.start..self.end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Debug for RequestToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestToken([redacted])")
    }
}

/// What looking for a token found. Public for the fuzzer only.
#[doc(hidden)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Presented {
    /// No source had a token: the request is anonymous.
    Absent,
    /// A token that passed the syntax check.
    Token(RequestToken),
    /// A bearer token found in the header, not checked yet.
    Located(Located),
    /// Something was sent that cannot be a token.
    Malformed(Malformed),
}

type CustomSource = Arc<dyn Fn(&HttpRequest) -> Option<String> + Send + Sync>;

/// Where to look for the token.
#[derive(Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (the default).
    BearerHeader,
    /// A cookie of this name.
    Cookie(Arc<str>),
    /// A query-string parameter of this name (tokens in URLs end up in
    /// access logs: prefer the header).
    Query(Arc<str>),
    /// A function of your own; `Some` means "a token was sent".
    Custom(CustomSource),
}

impl TokenSource {
    /// A cookie source.
    pub fn cookie(name: &str) -> Self {
        Self::Cookie(name.into())
    }

    /// A query-parameter source.
    pub fn query(name: &str) -> Self {
        Self::Query(name.into())
    }

    /// A custom source.
    pub fn custom(f: impl Fn(&HttpRequest) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    fn find(&self, req: &HttpRequest) -> Option<Presented> {
        match self {
            TokenSource::BearerHeader => bearer(req),
            TokenSource::Cookie(name) => cookie(req, name),
            TokenSource::Query(name) => query_param(req.query_string(), name),
            TokenSource::Custom(f) => f(req).map(|v| presented_owned(&v)),
        }
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::BearerHeader => f.write_str("BearerHeader"),
            TokenSource::Cookie(n) => f.debug_tuple("Cookie").field(n).finish(),
            TokenSource::Query(n) => f.debug_tuple("Query").field(n).finish(),
            TokenSource::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Looks through every source: exactly one may find something.
pub(crate) fn find_token(req: &HttpRequest, sources: &[TokenSource]) -> Presented {
    if let [only] = sources {
        // One source (the default): nothing else to rule out.
        return only.find(req).unwrap_or(Presented::Absent);
    }
    let mut found = sources.iter().filter_map(|s| s.find(req));
    match (found.next(), found.next()) {
        (None, _) => Presented::Absent,
        (Some(only), None) => only,
        (Some(_), Some(_)) => Presented::Malformed(Malformed::Ambiguous),
    }
}

fn presented_owned(token: &str) -> Presented {
    match check_token(token) {
        Ok(()) => RequestToken::owned(token)
            .map(Presented::Token)
            .unwrap_or(Presented::Malformed(Malformed::BadCharacter)),
        Err(e) => Presented::Malformed(e),
    }
}

/// `Authorization: Bearer <token>`. Another scheme (e.g. `Basic`) counts as
/// no bearer token; two `Authorization` headers are ambiguous.
fn bearer(req: &HttpRequest) -> Option<Presented> {
    let mut values = req.headers().get_all(AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        return Some(Presented::Malformed(Malformed::Ambiguous));
    }
    locate_bearer(value).map(Presented::Located)
}

/// Parses one `Authorization` value; `None` if it is not the Bearer scheme.
/// Public for the fuzzer and the benches only.
///
/// The same as [`locate_bearer`] followed by [`Located::check`].
#[doc(hidden)]
pub fn parse_bearer(value: &HeaderValue) -> Option<Presented> {
    locate_bearer(value).map(|located| match located.check() {
        Ok(token) => Presented::Token(token),
        Err(e) => Presented::Malformed(e),
    })
}

/// Finds the token in one `Authorization` value without checking its
/// characters; `None` if it is not the Bearer scheme. Public for the
/// fuzzer and the benches only.
///
/// The token runs from the first byte after the scheme's spaces to the
/// last byte that is not a space: the characters between are looked at by
/// [`Located::check`], which the middleware skips when the verifier
/// remembers accepting these very bytes
/// ([`Verifier::recall`](crate::verify::Verifier::recall)).
#[doc(hidden)]
pub fn locate_bearer(value: &HeaderValue) -> Option<Located> {
    const SCHEME: &[u8] = b"bearer";
    let bytes = value.as_bytes();
    let at = skip_spaces(bytes, 0);
    let scheme = bytes.get(at..at + SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let after = at + SCHEME.len();
    if bytes.get(after).is_some_and(|&b| !is_space(b)) {
        return None; // e.g. "Bearerx": another scheme
    }
    let start = skip_spaces(bytes, after);
    // Never below `start`: the byte there, if any, is not a space.
    let end = bytes.len()
        - bytes[start..]
            .iter()
            .rev()
            .take_while(|&&b| is_space(b))
            .count();
    // The token is a slice of the header value: remember where, and share
    // the value's bytes instead of copying them.
    Some(Located(RequestToken {
        value: value.clone(),
        start,
        end,
    }))
}

/// A bearer token found in the header whose characters are not checked
/// yet. Public for the fuzzer and the benches only; `Debug` hides it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Located(RequestToken);

impl Located {
    /// The token's bytes, unchecked, unless they are longer than any
    /// token seen (512 bytes): such a token is to be checked first. Do not
    /// log them.
    pub fn unchecked_bytes(&self) -> Option<&[u8]> {
        let RequestToken { value, start, end } = &self.0;
        value
            .as_bytes()
            .get(*start..*end)
            .filter(|bytes| bytes.len() <= RECALL_MAX_LEN)
    }

    /// The token, for a verifier that remembers accepting these bytes: only
    /// a token that passed [`check`](Self::check) can have been accepted.
    pub(crate) fn remembered(self) -> RequestToken {
        self.0
    }

    /// The syntax check: the token, or why it cannot be one (more than one
    /// word after `Bearer` is [`Malformed::Ambiguous`]).
    pub fn check(self) -> Result<RequestToken, Malformed> {
        let RequestToken { value, start, end } = &self.0;
        let (word_end, well_formed) = scan_word(value.as_bytes(), *start);
        if word_end != *end {
            // A space, then more: a second word.
            return Err(Malformed::Ambiguous);
        }
        verdict(end - start, well_formed).map(|()| self.0)
    }
}

/// The value of `name` in a query string, percent-decoded; a repeated
/// parameter is ambiguous.
fn query_param(query: &str, name: &str) -> Option<Presented> {
    let mut values = url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name);
    let (_, value) = values.next()?;
    if values.next().is_some() {
        return Some(Presented::Malformed(Malformed::Ambiguous));
    }
    Some(presented_owned(&value))
}

/// The cookie `name`; sent twice, it is ambiguous.
fn cookie(req: &HttpRequest, name: &str) -> Option<Presented> {
    let cookies = req.cookies().ok()?;
    let mut values = cookies.iter().filter(|c| c.name() == name);
    let value = values.next()?.value();
    if values.next().is_some() {
        return Some(Presented::Malformed(Malformed::Ambiguous));
    }
    Some(presented_owned(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn header(v: &str) -> Presented {
        match parse_bearer(&HeaderValue::from_str(v).unwrap()) {
            Some(p) => p,
            None => Presented::Absent,
        }
    }

    fn token_of(p: Presented) -> String {
        match p {
            Presented::Token(t) => t.expose_secret().to_owned(),
            Presented::Located(l) => match l.check() {
                Ok(t) => t.expose_secret().to_owned(),
                Err(e) => panic!("expected a token, got {e:?}"),
            },
            other => panic!("expected a token, got {other:?}"),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR   abc",
            "Bearer abc  ",
            "  Bearer\tabc",
        ] {
            assert_eq!(token_of(header(v)), "abc", "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_garbage() {
        assert!(matches!(header("Basic dXNlcjpwdw=="), Presented::Absent));
        assert!(matches!(header("Bearerabc"), Presented::Absent));
        assert!(matches!(
            header("Bearer"),
            Presented::Malformed(Malformed::Empty)
        ));
        assert!(matches!(
            header("Bearer   "),
            Presented::Malformed(Malformed::Empty)
        ));
        assert!(matches!(
            header("Bearer a b"),
            Presented::Malformed(Malformed::Ambiguous)
        ));
        assert!(matches!(
            header("Bearer a,b"),
            Presented::Malformed(Malformed::BadCharacter)
        ));
        assert!(matches!(
            header("Bearer ===="),
            Presented::Malformed(Malformed::BadCharacter)
        ));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(matches!(
            header(&long),
            Presented::Malformed(Malformed::TooLong)
        ));
        let max = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(token_of(header(&max)).len(), MAX_TOKEN_LEN);
        assert_eq!(token_of(header("Bearer ab+/_-.~cd==")), "ab+/_-.~cd==");
    }

    #[test]
    fn one_source_may_find_a_token() {
        let req = TestRequest::default()
            .uri("/?access_token=fromquery")
            .insert_header(("cookie", "ak=fromcookie"))
            .to_http_request();
        let sources = [
            TokenSource::query("access_token"),
            TokenSource::cookie("ak"),
        ];
        // RFC 6750 §3.1: more than one method is invalid_request.
        assert!(matches!(
            find_token(&req, &sources),
            Presented::Malformed(Malformed::Ambiguous)
        ));
        let sources = [TokenSource::BearerHeader, TokenSource::cookie("ak")];
        assert_eq!(token_of(find_token(&req, &sources)), "fromcookie");
        let sources = [
            TokenSource::query("access_token"),
            TokenSource::BearerHeader,
        ];
        assert_eq!(token_of(find_token(&req, &sources)), "fromquery");
        let custom = [TokenSource::custom(|_| Some("x y".into()))];
        assert!(matches!(find_token(&req, &custom), Presented::Malformed(_)));
        assert!(matches!(
            find_token(&req, &[TokenSource::BearerHeader]),
            Presented::Absent
        ));
    }

    #[test]
    fn repeated_parameter_or_cookie_is_ambiguous() {
        let req = TestRequest::default()
            .uri("/?access_token=a&access_token=b")
            .to_http_request();
        assert!(matches!(
            find_token(&req, &[TokenSource::query("access_token")]),
            Presented::Malformed(Malformed::Ambiguous)
        ));
        let req = TestRequest::default()
            .insert_header(("cookie", "ak=a; ak=b"))
            .to_http_request();
        assert!(matches!(
            find_token(&req, &[TokenSource::cookie("ak")]),
            Presented::Malformed(Malformed::Ambiguous)
        ));
    }

    #[test]
    fn two_authorization_headers_are_ambiguous() {
        let req = TestRequest::default()
            .append_header((AUTHORIZATION, "Bearer a"))
            .append_header((AUTHORIZATION, "Bearer b"))
            .to_http_request();
        assert!(matches!(
            find_token(&req, &[TokenSource::BearerHeader]),
            Presented::Malformed(Malformed::Ambiguous)
        ));
    }

    #[test]
    fn token_run_stops_at_the_first_other_byte_wherever_it_is() {
        // Around and across the 16-byte chunks, every byte value.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
        for b in 0..=255u8 {
            assert_eq!(is_token_char(b), alphabet.contains(&b), "{b:#04x}");
            for len in [0, 1, 15, 16, 17, 40] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let want = if alphabet.contains(&b) { len } else { at };
                    assert_eq!(token_run(&bytes), want, "{b:#04x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn debug_hides_token() {
        let t = RequestToken::owned("EMAWsecret").unwrap();
        assert!(!format!("{t:?}").contains("EMAWsecret"));
    }
}
