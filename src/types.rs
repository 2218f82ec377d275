//! What the Graph API returns, as typed structs.
//!
//! Ids are decimal strings of 15–16 digits; they stay strings (never 32-bit
//! integers). User access tokens are [`AccessToken`]s, whose `Debug` hides
//! them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

/// An Account Kit account, as `GET /me` (or the accounts listing) returns it.
///
/// Exactly one of `phone` and `email` is normally present; an account may
/// also have neither in a listing. `application` is absent before v1.2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// The account id (decimal string).
    pub id: String,
    /// The phone number the user logged in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    /// The email address the user logged in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// The app the token was issued for (v1.2 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,
}

impl Account {
    /// An account with the given id and nothing else (for test doubles and
    /// custom verifiers).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            phone: None,
            email: None,
            application: None,
        }
    }

    /// Sets the phone.
    pub fn with_phone(mut self, phone: Phone) -> Self {
        self.phone = Some(phone);
        self
    }

    /// Sets the email.
    pub fn with_email(mut self, address: impl Into<String>) -> Self {
        self.email = Some(Email {
            address: address.into(),
        });
        self
    }

    /// Sets the application id.
    pub fn with_application(mut self, app_id: impl Into<String>) -> Self {
        self.application = Some(Application { id: app_id.into() });
        self
    }

    /// The application id, when present.
    pub fn application_id(&self) -> Option<&str> {
        self.application.as_ref().map(|a| a.id.as_str())
    }
}

/// A phone login: `number` is `+` followed by `country_prefix` and
/// `national_number`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    /// E.164 number, e.g. `+15551234567`.
    pub number: String,
    /// Country calling code without `+`, e.g. `1`.
    pub country_prefix: String,
    /// The rest, e.g. `5551234567`.
    pub national_number: String,
}

/// An email login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The address.
    pub address: String,
}

/// The app a token was issued for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// The Facebook app id.
    pub id: String,
}

/// A user access token (or any other bearer secret): zeroized on drop,
/// `[redacted]` in `Debug`. Read it with [`expose_secret`](Self::expose_secret).
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token itself. Do not log it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for AccessToken {}

impl<'de> Deserialize<'de> for AccessToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// The answer to an authorization-code exchange.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TokenExchange {
    /// The account id.
    pub id: String,
    /// The new user access token.
    pub access_token: AccessToken,
    /// How often the client should refresh, in seconds (30 days in every
    /// recording).
    pub token_refresh_interval_sec: u64,
}

/// One page of `GET /{app_id}/accounts`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AccountsPage {
    /// The accounts on this page.
    pub data: Vec<Account>,
    /// Cursors and neighbour links.
    #[serde(default)]
    pub paging: Option<Paging>,
}

impl AccountsPage {
    /// The cursor after this page: pass it to resume a listing.
    pub fn after_cursor(&self) -> Option<&str> {
        self.paging
            .as_ref()
            .and_then(|p| p.cursors.as_ref())
            .and_then(|c| c.after.as_deref())
    }

    /// Whether a next page exists (`paging.next` is present).
    pub fn has_next(&self) -> bool {
        self.paging.as_ref().is_some_and(|p| p.next.is_some())
    }
}

/// The Graph cursor envelope.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Paging {
    /// `before` and `after` cursors.
    #[serde(default)]
    pub cursors: Option<Cursors>,
    /// URL of the previous page (absent on the first page). It carries the
    /// app access token in its query: never log it.
    #[serde(default)]
    pub previous: Option<String>,
    /// URL of the next page (absent on the last page). It carries the app
    /// access token in its query: never log it.
    #[serde(default)]
    pub next: Option<String>,
}

impl fmt::Debug for Paging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = |l: &Option<String>| l.as_ref().map(|_| "[url with credentials]");
        f.debug_struct("Paging")
            .field("cursors", &self.cursors)
            .field("previous", &link(&self.previous))
            .field("next", &link(&self.next))
            .finish()
    }
}

/// Opaque page cursors.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Cursors {
    /// Cursor of the first item of the page.
    #[serde(default)]
    pub before: Option<String>,
    /// Cursor of the last item of the page.
    #[serde(default)]
    pub after: Option<String>,
}

/// `{"success": true}`
#[derive(Deserialize)]
pub(crate) struct Success {
    pub(crate) success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_recorded_success_shape() {
        let phone: Account = serde_json::from_str(
            r#"{"id":"1011166682335378","phone":{"number":"+15879994455","country_prefix":"1","national_number":"5879994455"}}"#,
        )
        .unwrap();
        assert_eq!(phone.phone.unwrap().national_number, "5879994455");
        assert!(phone.application.is_none());

        let email: Account = serde_json::from_str(
            r#"{"email":{"address":"test\u0040example.com"},"id":"941488975973375","application":{"id":"390265671523337"}}"#,
        )
        .unwrap();
        assert_eq!(email.email.unwrap().address, "test@example.com");
        assert_eq!(email.application.unwrap().id, "390265671523337");

        let exchange: TokenExchange = serde_json::from_str(
            r#"{"id":"1011166682335378","access_token":"EMAWabc","token_refresh_interval_sec":2592000}"#,
        )
        .unwrap();
        assert_eq!(exchange.access_token.expose_secret(), "EMAWabc");
        assert_eq!(exchange.token_refresh_interval_sec, 2_592_000);
        assert!(!format!("{exchange:?}").contains("EMAWabc"));
    }

    #[test]
    fn paging_debug_hides_credentialed_urls() {
        let page: AccountsPage = serde_json::from_str(
            r#"{"data":[],"paging":{"cursors":{"before":"b","after":"a"},"next":"https://x/v1.3/1/accounts?access_token=AA|1|topsecret"}}"#,
        )
        .unwrap();
        assert_eq!(page.after_cursor(), Some("a"));
        assert!(page.has_next());
        assert!(!format!("{page:?}").contains("topsecret"));
    }
}
