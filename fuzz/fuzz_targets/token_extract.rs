//! Token extraction from an `Authorization` value: never a panic; whatever
//! is accepted passes the syntax check and is a slice of the header.
#![no_main]

use actix_accountkit::token::{check_token, locate_bearer, parse_bearer, Presented};
use actix_web::http::header::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = check_token(s);
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    // What the middleware looks up before the check is what the check
    // accepts, byte for byte.
    if let Some(located) = locate_bearer(&value) {
        let unchecked = located.unchecked_bytes().map(<[u8]>::to_vec);
        if let (Ok(token), Some(unchecked)) = (located.check(), unchecked) {
            assert_eq!(unchecked, token.expose_secret().as_bytes());
        }
    }
    if let Some(Presented::Token(token)) = parse_bearer(&value) {
        let token = token.expose_secret();
        assert!(check_token(token).is_ok(), "accepted a token that fails the check");
        assert!(!token.is_empty() && token.len() <= 4096);
        let value = value.as_bytes();
        assert!(
            value.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is not part of the header"
        );
        assert!(value.len() >= 7 && value.to_ascii_lowercase().windows(6).any(|w| w == b"bearer"));
    }
});
