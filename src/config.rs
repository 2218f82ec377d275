//! Configuration and secrets: app credentials, API version, endpoint,
//! timeouts, retries, and the `appsecret_proof` computation.
//!
//! Everything secret (the app secret, the client token, the app access token
//! built from them) is held in [`SecretString`], which zeroizes on drop and
//! never prints its contents: a [`Config`] can be logged with `{:?}` safely.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use url::Url;

use crate::error::ConfigError;

/// The Graph API version used when none is configured. Default is `v1.3`,
/// the last version Account Kit shipped.
pub const DEFAULT_API_VERSION: &str = "v1.3";
/// The Account Kit Graph endpoint. Default is `https://graph.accountkit.com`.
pub const DEFAULT_BASE_URL: &str = "https://graph.accountkit.com";
/// Environment variable of [`Config::from_env`]: the Facebook app id
/// (required).
pub const ENV_APP_ID: &str = "ACCOUNTKIT_APP_ID";
/// Environment variable of [`Config::from_env`]: the Account Kit app secret
/// (required).
pub const ENV_APP_SECRET: &str = "ACCOUNTKIT_APP_SECRET";
/// Environment variable of [`Config::from_env`]: the client token (optional).
pub const ENV_CLIENT_TOKEN: &str = "ACCOUNTKIT_CLIENT_TOKEN";
/// Environment variable of [`Config::from_env`]: the Graph API version
/// (optional, default [`DEFAULT_API_VERSION`]).
pub const ENV_API_VERSION: &str = "ACCOUNTKIT_API_VERSION";
/// Environment variable of [`Config::from_env`]: the Graph endpoint
/// (optional, default [`DEFAULT_BASE_URL`]).
pub const ENV_BASE_URL: &str = "ACCOUNTKIT_BASE_URL";
/// Environment variable of [`Config::from_env`]: `host:port` of an Account
/// Kit emulator; every call goes to `http://host:port` (optional).
pub const ENV_EMULATOR_HOST: &str = "ACCOUNTKIT_EMULATOR_HOST";
/// Per-attempt request timeout. Default is 5 seconds (reqwest has none).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries after the first attempt of an idempotent read. Default is 2.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// First backoff between retries; doubled each time. Default is 100 ms.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Upper bound of one backoff. Default is 2 seconds.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A validated Graph API version such as `v1.3` (`^v\d+\.\d+$`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiVersion(Box<str>);

impl ApiVersion {
    /// Parses a version, refusing anything that is not `v<digits>.<digits>`.
    ///
    /// ```
    /// use actix_accountkit::config::ApiVersion;
    /// assert!(ApiVersion::parse("v1.3").is_ok());
    /// assert!(ApiVersion::parse("1.3").is_err());
    /// ```
    pub fn parse(version: &str) -> Result<Self, ConfigError> {
        if is_valid_version(version) {
            Ok(Self(version.into()))
        } else {
            Err(ConfigError::InvalidVersion {
                version: version.chars().take(32).collect(),
            })
        }
    }

    /// The version as written, e.g. `v1.3`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(major, minor)`, e.g. `(1, 3)`.
    pub fn numbers(&self) -> (u32, u32) {
        let rest = &self.0[1..];
        let (major, minor) = rest.split_once('.').unwrap_or((rest, "0"));
        (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `^v\d+\.\d+$`, without a regex engine.
pub(crate) fn is_valid_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// How often, and after what backoff, a failed call is sent again.
///
/// Reads (GET) are retried after connection and other transport errors,
/// HTTP 5xx answers, Graph code 2 (an outage, or a misconfigured app: the
/// answer cannot tell, so it is retried but only this many times), and rate
/// limiting (code 4 or HTTP 429). Writes (POST, DELETE) and the code
/// exchange only after a failure that shows the call was not carried out:
/// code 2, rate limiting, or a connection that could not be made. Never
/// after a timeout (the attempt already spent the time budget) or another
/// Graph error. See the [client's docs](crate::client#retries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default is [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// First backoff, doubled per retry. Default is [`DEFAULT_INITIAL_BACKOFF`].
    pub initial_backoff: Duration,
    /// Cap of one backoff. Default is [`DEFAULT_MAX_BACKOFF`].
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// A policy that never retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The backoff before retry number `retry` (1-based), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

/// Everything the Graph client needs to talk to Account Kit for one app.
///
/// Built with [`Config::builder`]. Cheap to clone: clone it, or better share
/// the [`GraphClient`](crate::client::GraphClient) built from it.
///
/// ```
/// use actix_accountkit::config::Config;
/// use std::time::Duration;
///
/// let config = Config::builder("390265671523337", "9bdc9ae47c4211b9919a036c1e1bc477")
///     .timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(config.api_version().as_str(), "v1.3");
/// // Secrets never show up in Debug output.
/// assert!(!format!("{config:?}").contains("9bdc9ae4"));
/// # Ok::<(), actix_accountkit::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    app_id: Box<str>,
    app_secret: SecretString,
    client_token: Option<SecretString>,
    app_access_token: SecretString,
    client_access_token: Option<SecretString>,
    proof_key: HmacSha256,
    api_version: ApiVersion,
    base_url: Url,
    require_appsecret_proof: bool,
    timeout: Duration,
    retry: RetryPolicy,
}

impl Config {
    /// Starts a configuration for the app `app_id` with its Account Kit app
    /// secret (not the Facebook app secret: a common mix-up).
    pub fn builder(app_id: impl Into<String>, app_secret: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder {
            app_id: app_id.into(),
            app_secret: SecretString::from(app_secret.into()),
            client_token: None,
            api_version: DEFAULT_API_VERSION.to_owned(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            require_appsecret_proof: true,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// A configuration from the process environment:
    ///
    /// | variable | |
    /// |---|---|
    /// | `ACCOUNTKIT_APP_ID` | required: the Facebook app id |
    /// | `ACCOUNTKIT_APP_SECRET` | required: the Account Kit app secret |
    /// | `ACCOUNTKIT_CLIENT_TOKEN` | optional: the client token |
    /// | `ACCOUNTKIT_API_VERSION` | optional, default [`DEFAULT_API_VERSION`] |
    /// | `ACCOUNTKIT_BASE_URL` | optional, default [`DEFAULT_BASE_URL`] |
    /// | `ACCOUNTKIT_EMULATOR_HOST` | optional: `host:port` of an emulator; every call goes to `http://host:port` (as `FIREBASE_AUTH_EMULATOR_HOST` does for Firebase) |
    ///
    /// An empty variable counts as unset. Setting both
    /// `ACCOUNTKIT_EMULATOR_HOST` and `ACCOUNTKIT_BASE_URL` is refused
    /// ([`ConfigError::ConflictingEnvVars`], naming both): which one wins
    /// would be a guess. The other settings keep their builder defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEnvVar`] for a missing required variable,
    /// [`ConfigError::InvalidEnvVar`] for a value that is not usable; both
    /// name the variable, and neither ever contains a secret's value.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env), reading each variable through `var`
    /// instead of the process environment: for tests, or another source.
    ///
    /// ```
    /// use actix_accountkit::config::Config;
    /// use actix_accountkit::error::ConfigError;
    /// use std::collections::HashMap;
    ///
    /// let env = HashMap::from([
    ///     ("ACCOUNTKIT_APP_ID", "390265671523337"),
    ///     ("ACCOUNTKIT_APP_SECRET", "9bdc9ae47c4211b9919a036c1e1bc477"),
    ///     ("ACCOUNTKIT_EMULATOR_HOST", "127.0.0.1:8787"),
    /// ]);
    /// let config = Config::from_env_with(|name| env.get(name).map(|v| v.to_string()))?;
    /// assert_eq!(config.base_url().as_str(), "http://127.0.0.1:8787/");
    ///
    /// let err = Config::from_env_with(|_| None).unwrap_err();
    /// assert!(err.to_string().contains("ACCOUNTKIT_APP_ID"));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_env_with(
        mut var: impl FnMut(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut get = |name: &str| var(name).filter(|v| !v.is_empty());
        let app_id = get(ENV_APP_ID).ok_or(ConfigError::MissingEnvVar {
            variable: ENV_APP_ID,
        })?;
        let app_secret = get(ENV_APP_SECRET).ok_or(ConfigError::MissingEnvVar {
            variable: ENV_APP_SECRET,
        })?;
        let client_token = get(ENV_CLIENT_TOKEN);
        let api_version = get(ENV_API_VERSION);
        let base_url = get(ENV_BASE_URL);
        let emulator_host = get(ENV_EMULATOR_HOST);
        let invalid = |variable: &'static str, source: ConfigError| ConfigError::InvalidEnvVar {
            variable,
            source: Box::new(source),
        };
        let (endpoint, endpoint_var) = match (base_url, emulator_host) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::ConflictingEnvVars {
                    first: ENV_EMULATOR_HOST,
                    second: ENV_BASE_URL,
                    why: "both name the endpoint; unset one of them",
                })
            }
            (Some(url), None) => (Some(url), ENV_BASE_URL),
            (None, Some(host)) => (
                Some(emulator_url(&host).map_err(|e| invalid(ENV_EMULATOR_HOST, e))?),
                ENV_EMULATOR_HOST,
            ),
            (None, None) => (None, ENV_BASE_URL),
        };
        let mut builder = Config::builder(app_id, app_secret);
        if let Some(token) = client_token {
            builder = builder.client_token(token);
        }
        if let Some(version) = api_version {
            builder = builder.api_version(version);
        }
        if let Some(url) = endpoint {
            builder = builder.base_url(url);
        }
        builder.build().map_err(|e| match e {
            crate::Error::Config(e) => {
                let variable = match e {
                    ConfigError::InvalidAppId => ENV_APP_ID,
                    ConfigError::InvalidAppSecret => ENV_APP_SECRET,
                    ConfigError::InvalidClientToken => ENV_CLIENT_TOKEN,
                    ConfigError::InvalidVersion { .. } => ENV_API_VERSION,
                    ConfigError::InvalidBaseUrl { .. } => endpoint_var,
                    other => return other,
                };
                invalid(variable, e)
            }
            // `build` only fails with configuration errors.
            _ => ConfigError::Other("unexpected error building the configuration"),
        })
    }

    /// The Facebook app id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The Account Kit app secret; expose it only to build a request.
    pub fn app_secret(&self) -> &SecretString {
        &self.app_secret
    }

    /// The client token, if configured.
    pub fn client_token(&self) -> Option<&SecretString> {
        self.client_token.as_ref()
    }

    /// `AA|<app_id>|<app_secret>`: the app access token for server calls.
    pub fn app_access_token(&self) -> &SecretString {
        &self.app_access_token
    }

    /// `AA|<app_id>|<client_token>`: the device form, if a client token is set.
    pub fn client_access_token(&self) -> Option<&SecretString> {
        self.client_access_token.as_ref()
    }

    /// The Graph API version, e.g. `v1.3`.
    pub fn api_version(&self) -> &ApiVersion {
        &self.api_version
    }

    /// The Graph endpoint, without the version.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Whether user-token calls carry `appsecret_proof`.
    pub fn require_appsecret_proof(&self) -> bool {
        self.require_appsecret_proof
    }

    /// Per-attempt request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Retry policy of idempotent reads.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The `appsecret_proof` of `access_token` under this app's secret.
    ///
    /// The HMAC key schedule is computed once, when the config is built.
    pub fn appsecret_proof(&self, access_token: &str) -> String {
        let mut mac = self.proof_key.clone();
        mac.update(access_token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A 32-byte key for `purpose`, derived from the app secret and bound to
    /// this app id: HKDF-SHA256 (RFC 5869) with `purpose` as the salt, the
    /// app secret as the input keying material and the app id as the info.
    ///
    /// The secret is the *message* of the extract step, never an HMAC key
    /// here, so no derived key can equal an `appsecret_proof` (HMAC keyed
    /// by the secret over a token), whatever the token; and a key derived
    /// for one purpose or one app says nothing about another.
    // Used by the Redis tier only.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn derive_key(&self, purpose: &str) -> SecretBox<[u8; 32]> {
        hkdf_sha256(
            purpose.as_bytes(),
            self.app_secret.expose_secret().as_bytes(),
            self.app_id.as_bytes(),
        )
    }

    /// Every secret string this config holds, to scrub them from text that
    /// came back from the network.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.app_secret.expose_secret())
            .chain(self.client_token.as_ref().map(|t| t.expose_secret()))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("app_id", &self.app_id)
            .field("app_secret", &"[redacted]")
            .field(
                "client_token",
                &self.client_token.as_ref().map(|_| "[redacted]"),
            )
            .field("api_version", &self.api_version.as_str())
            .field("base_url", &self.base_url.as_str())
            .field("require_appsecret_proof", &self.require_appsecret_proof)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Builder of [`Config`]; see [`Config::builder`].
pub struct ConfigBuilder {
    app_id: String,
    app_secret: SecretString,
    client_token: Option<SecretString>,
    api_version: String,
    base_url: String,
    require_appsecret_proof: bool,
    timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("app_id", &self.app_id)
            .field("api_version", &self.api_version)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ConfigBuilder {
    /// The client token, for the device form of the app access token.
    /// Default is none.
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(SecretString::from(token.into()));
        self
    }

    /// The Graph API version, checked against `^v\d+\.\d+$` by
    /// [`build`](Self::build). Default is [`DEFAULT_API_VERSION`].
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// The Graph endpoint (scheme, host, optional port and path prefix),
    /// e.g. an emulator's base URL. Default is [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Whether the app has "Require App Secret" on, so user-token calls must
    /// carry `appsecret_proof`. Default is `true`.
    pub fn require_appsecret_proof(mut self, on: bool) -> Self {
        self.require_appsecret_proof = on;
        self
    }

    /// Per-attempt timeout of every request. Default is [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retry policy of idempotent reads. Default is [`RetryPolicy::default`].
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Checks every field and builds the configuration.
    pub fn build(self) -> Result<Config, crate::Error> {
        let app_id = self.app_id.trim();
        if app_id.is_empty() || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::InvalidAppId.into());
        }
        let secret = self.app_secret.expose_secret();
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidAppSecret.into());
        }
        if let Some(token) = &self.client_token {
            let token = token.expose_secret();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::InvalidClientToken.into());
            }
        }
        let api_version = ApiVersion::parse(&self.api_version)?;
        let mut base_url = Url::parse(&self.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or(ConfigError::InvalidBaseUrl {
                reason: "expected an absolute http(s) URL",
            })?;
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(ConfigError::InvalidBaseUrl {
                reason: "the base URL must not carry a query or fragment",
            }
            .into());
        }
        // The base URL is shown (`Debug`, start-up checks, logs): it must
        // hold no secret.
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(ConfigError::InvalidBaseUrl {
                reason: "the base URL must not carry a user name or password",
            }
            .into());
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::InvalidTimeout.into());
        }
        let proof_key = HmacSha256::new_from_slice(secret.as_bytes())
            .map_err(|_| ConfigError::InvalidAppSecret)?;
        let app_access_token = SecretString::from(format!("AA|{app_id}|{secret}"));
        let client_access_token = self
            .client_token
            .as_ref()
            .map(|t| SecretString::from(format!("AA|{app_id}|{}", t.expose_secret())));
        Ok(Config {
            app_id: app_id.into(),
            app_secret: self.app_secret,
            client_token: self.client_token,
            app_access_token,
            client_access_token,
            proof_key,
            api_version,
            base_url,
            require_appsecret_proof: self.require_appsecret_proof,
            timeout: self.timeout,
            retry: self.retry,
        })
    }
}

/// `http://host:port` from `ACCOUNTKIT_EMULATOR_HOST`'s `host:port`.
fn emulator_url(host: &str) -> Result<String, ConfigError> {
    const EXPECTED: &str = "expected host:port, e.g. 127.0.0.1:8787 (no scheme, no path)";
    let (name, port) = host.rsplit_once(':').ok_or(ConfigError::Other(EXPECTED))?;
    let port_ok =
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    if name.is_empty()
        || !port_ok
        || host.contains(['/', '?', '#', '@'])
        || host.contains(char::is_whitespace)
    {
        return Err(ConfigError::Other(EXPECTED));
    }
    let url = format!("http://{host}");
    match Url::parse(&url) {
        Ok(parsed) if parsed.host().is_some() => Ok(url),
        _ => Err(ConfigError::Other(EXPECTED)),
    }
}

/// HMAC-SHA256 keyed with `key`.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (RFC 2104: longer ones are hashed,
    // shorter ones padded); the hmac crate's `new_from_slice` never fails
    // and its own `KeyInit::new` relies on that. Not reachable from input.
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// HKDF-SHA256 (RFC 5869) with one output block (32 bytes).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8]) -> SecretBox<[u8; 32]> {
    let mut extract = hmac_sha256(salt);
    extract.update(ikm);
    let mut prk: [u8; 32] = extract.finalize().into_bytes().into();
    let mut expand = hmac_sha256(&prk);
    prk.zeroize();
    expand.update(info);
    expand.update(&[1]);
    let mut okm: [u8; 32] = expand.finalize().into_bytes().into();
    let key = SecretBox::new(Box::new(okm));
    okm.zeroize();
    key
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 of `access_token` keyed by
/// `app_secret`, as the Graph API defines it
/// (`hash_hmac('sha256', $access_token, $app_secret)` in PHP).
///
/// Prefer [`Config::appsecret_proof`], which reuses the keyed state.
///
/// ```
/// use actix_accountkit::config::appsecret_proof;
/// use secrecy::SecretString;
///
/// let secret = SecretString::from("9bdc9ae47c4211b9919a036c1e1bc477");
/// assert_eq!(
///     appsecret_proof(&secret, "12345"),
///     "f33504f20f01865663144455838c35853730928cce84c16952da6a4e8ae3cde3",
/// );
/// ```
pub fn appsecret_proof(app_secret: &SecretString, access_token: &str) -> String {
    hmac_sha256_hex(
        app_secret.expose_secret().as_bytes(),
        access_token.as_bytes(),
    )
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length (RFC 2104), so this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 accepts keys of every length")
    };
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_and_binds_purpose_and_app() {
        // RFC 5869 test case 1, first 32 bytes of the OKM.
        let okm = hkdf_sha256(
            &(0u8..=0x0c).collect::<Vec<_>>(),
            &[0x0b; 22],
            &(0xf0u8..=0xf9).collect::<Vec<_>>(),
        );
        assert_eq!(
            hex::encode(okm.expose_secret()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
        // `openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:<secret>
        //  -kdfopt salt:<purpose> -kdfopt info:<app id> HKDF`
        let config = Config::builder("390265671523337", "9bdc9ae47c4211b9919a036c1e1bc477")
            .build()
            .unwrap();
        let key = config.derive_key("actix-accountkit redis entry v1");
        assert_eq!(
            hex::encode(key.expose_secret()),
            "8d6afc966bc12faae713b8424f4600a93520ce0d8f4595fc9ce21a0b6ef784b9"
        );
        let other_purpose = config.derive_key("something else");
        let other_app = Config::builder("390265671523338", "9bdc9ae47c4211b9919a036c1e1bc477")
            .build()
            .unwrap()
            .derive_key("actix-accountkit redis entry v1");
        assert_ne!(key.expose_secret(), other_purpose.expose_secret());
        assert_ne!(key.expose_secret(), other_app.expose_secret());
        assert!(!hex::encode(key.expose_secret()).contains("9bdc9ae4"));
    }

    #[test]
    fn rfc4231_vectors() {
        // RFC 4231 test cases 1, 2, 3, 4, 6 and 7 (HMAC-SHA256 column).
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                (1u8..=25).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hmac_sha256_hex(&key, &message), expected);
        }
    }

    #[test]
    fn accountkit_vectors() {
        let secret = SecretString::from("9bdc9ae47c4211b9919a036c1e1bc477");
        assert_eq!(
            appsecret_proof(&secret, "invalid access token"),
            "dcca0fde4790f53de526ea8d25c7f8ddbb2616f0d9cb03abc05ba4f144b2d665"
        );
        assert_eq!(
            appsecret_proof(&secret, "12345"),
            "f33504f20f01865663144455838c35853730928cce84c16952da6a4e8ae3cde3"
        );
        let config = Config::builder("1234", "9bdc9ae47c4211b9919a036c1e1bc477")
            .build()
            .unwrap();
        assert_eq!(
            config.appsecret_proof("12345"),
            "f33504f20f01865663144455838c35853730928cce84c16952da6a4e8ae3cde3"
        );
        // The keyed state is reused, not consumed.
        assert_eq!(
            config.appsecret_proof("invalid access token"),
            "dcca0fde4790f53de526ea8d25c7f8ddbb2616f0d9cb03abc05ba4f144b2d665"
        );
    }

    #[test]
    fn versions() {
        for ok in ["v1.3", "v1.0", "v10.25"] {
            assert!(ApiVersion::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "1.3", "v1", "v1.", "v.3", "V1.3", "v1.3 ", "v1.3.1", "v1,3", "",
        ] {
            assert!(
                matches!(
                    ApiVersion::parse(bad),
                    Err(ConfigError::InvalidVersion { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(ApiVersion::parse("v2.17").unwrap().numbers(), (2, 17));
    }

    #[test]
    fn builder_checks_and_defaults() {
        let c = Config::builder("1234", "s3cr3t").build().unwrap();
        assert_eq!(c.base_url().as_str(), "https://graph.accountkit.com/");
        assert!(c.require_appsecret_proof());
        assert_eq!(c.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(c.app_access_token().expose_secret(), "AA|1234|s3cr3t");
        assert!(c.client_access_token().is_none());
        let c = Config::builder("1234", "s3cr3t")
            .client_token("ct0k")
            .build()
            .unwrap();
        assert_eq!(
            c.client_access_token().unwrap().expose_secret(),
            "AA|1234|ct0k"
        );
        assert!(Config::builder("", "s").build().is_err());
        assert!(Config::builder("12a", "s").build().is_err());
        assert!(Config::builder("12", "").build().is_err());
        assert!(Config::builder("12", "s")
            .base_url("ftp://x")
            .build()
            .is_err());
        assert!(Config::builder("12", "s").base_url("nope").build().is_err());
        for url in [
            "https://user:pass@graph.example",
            "http://user@127.0.0.1:8787",
        ] {
            let err = Config::builder("12", "s")
                .base_url(url)
                .build()
                .unwrap_err();
            assert!(
                err.to_string().contains("user name or password"),
                "{url}: {err}"
            );
            assert!(!format!("{err} {err:?}").contains("pass@"), "{err:?}");
        }
        assert!(Config::builder("12", "s")
            .timeout(Duration::ZERO)
            .build()
            .is_err());
        let err = Config::builder("12", "s")
            .api_version("1.3")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("1.3"), "{err}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(40), DEFAULT_MAX_BACKOFF);
    }
}
