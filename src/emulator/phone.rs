//! ITU-T E.164 country calling codes, used to split a login phone number into
//! the `country_prefix` and `national_number` that `/me` reports.
//!
//! The assigned codes form a prefix-free set (no code is the prefix of
//! another), so the longest match is also the only match.

/// Every assigned ITU-T E.164 country calling code (geographic and
/// non-geographic: freephone 800, shared cost 808, Inmarsat 870, UPT 878,
/// GMSS 881, international networks 882/883, OCHA 888, premium rate 979).
///
/// Spare/unassigned codes (e.g. 259, 384, 388, 422, 671, 684, 851, 887, 969,
/// 990, 997, 999) are deliberately absent.
pub(crate) const COUNTRY_CODES: &[&str] = &[
    // 1-digit zones: North American Numbering Plan, Russia/Kazakhstan.
    "1", "7", //
    // 2-digit codes.
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", //
    // 3-digit codes, zone 2 (Africa and dependencies).
    "211", "212", "213", "216", "218", "220", "221", "222", "223", "224", "225", "226", "227",
    "228", "229", "230", "231", "232", "233", "234", "235", "236", "237", "238", "239", "240",
    "241", "242", "243", "244", "245", "246", "247", "248", "249", "250", "251", "252", "253",
    "254", "255", "256", "257", "258", "260", "261", "262", "263", "264", "265", "266", "267",
    "268", "269", "290", "291", "297", "298", "299", //
    // Zones 3 and 4 (Europe).
    "350", "351", "352", "353", "354", "355", "356", "357", "358", "359", "370", "371", "372",
    "373", "374", "375", "376", "377", "378", "379", "380", "381", "382", "383", "385", "386",
    "387", "389", "420", "421", "423", //
    // Zone 5 (Central/South America).
    "500", "501", "502", "503", "504", "505", "506", "507", "508", "509", "590", "591", "592",
    "593", "594", "595", "596", "597", "598", "599", //
    // Zone 6 (Oceania).
    "670", "672", "673", "674", "675", "676", "677", "678", "679", "680", "681", "682", "683",
    "685", "686", "687", "688", "689", "690", "691", "692", //
    // Zone 8 (East Asia, non-geographic services).
    "800", "808", "850", "852", "853", "855", "856", "870", "878", "880", "881", "882", "883",
    "886", "888", //
    // Zone 9 (West/Central Asia).
    "960", "961", "962", "963", "964", "965", "966", "967", "968", "970", "971", "972", "973",
    "974", "975", "976", "977", "979", "992", "993", "994", "995", "996", "998",
];

/// A phone number split the way Account Kit reported it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Phone {
    /// Digits of the country calling code, e.g. `"1"`, `"55"`, `"353"`.
    pub(crate) country_prefix: String,
    /// The remaining digits.
    pub(crate) national_number: String,
}

impl Phone {
    /// `+` followed by the prefix and the national number.
    pub(crate) fn number(&self) -> String {
        format!("+{}{}", self.country_prefix, self.national_number)
    }
}

/// Parses an E.164 number (`+` and 8–15 digits in total, a known country
/// calling code, and at least 4 national digits).
pub(crate) fn parse(input: &str) -> Result<Phone, String> {
    let digits = input
        .strip_prefix('+')
        .ok_or_else(|| "phone must start with '+' (E.164, e.g. +15551234567)".to_owned())?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("phone must be '+' followed by digits only".to_owned());
    }
    if !(8..=15).contains(&digits.len()) {
        return Err("phone must have 8 to 15 digits after '+' (E.164)".to_owned());
    }
    let prefix = (1..=3)
        .rev()
        .filter_map(|n| digits.get(..n))
        .find(|p| COUNTRY_CODES.contains(p))
        .ok_or_else(|| "phone does not start with an assigned country calling code".to_owned())?;
    let national = &digits[prefix.len()..];
    if national.len() < 4 {
        return Err("phone national number is too short".to_owned());
    }
    Ok(Phone {
        country_prefix: prefix.to_owned(),
        national_number: national.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_prefix_free_and_unique() {
        for a in COUNTRY_CODES {
            for b in COUNTRY_CODES {
                if a != b {
                    assert!(!b.starts_with(a), "{a} is a prefix of {b}");
                }
            }
        }
    }

    #[test]
    fn splits_recorded_numbers() {
        let cases = [
            ("+15879994455", "1", "5879994455"),
            ("+5511973357095", "55", "11973357095"),
            ("+8617512097915", "86", "17512097915"),
            ("+35312345678", "353", "12345678"),
            ("+74951234567", "7", "4951234567"),
        ];
        for (input, cc, nn) in cases {
            let p = parse(input).unwrap();
            assert_eq!(
                (p.country_prefix.as_str(), p.national_number.as_str()),
                (cc, nn)
            );
            assert_eq!(p.number(), input);
        }
    }

    #[test]
    fn rejects_bad_numbers() {
        for bad in [
            "15551234567",
            "+",
            "+1555abc4567",
            "+2591234567",
            "+1234",
            "+1234567890123456",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
