//! Graph answer decoding: any status and body must become a value or an
//! error, never a panic; an error's text never quotes the body.
#![no_main]

use actix_accountkit::client::decode_answer;
use actix_accountkit::types::{Account, AccountsPage, TokenExchange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [a, b, rest @ ..] => (100 + (u16::from_le_bytes([*a, *b]) % 500), rest),
        _ => (200, data),
    };
    let outcomes = [
        decode_answer::<Account>(status, body).err(),
        decode_answer::<TokenExchange>(status, body).err(),
        decode_answer::<AccountsPage>(status, body).err(),
    ];
    for error in outcomes.into_iter().flatten() {
        let text = format!("{error} {error:?}");
        if let actix_accountkit::Error::Decode { .. } = error {
            // Decode errors describe the fault, they never echo content.
            if body.len() >= 12 {
                if let Ok(body) = std::str::from_utf8(body) {
                    assert!(!text.contains(body), "a decode error quoted the body");
                }
            }
        }
    }
});
