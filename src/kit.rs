//! Wiring: config → client → verifier → cache → middleware and admin client
//! sharing the same cache, in one call.

use std::fmt;
use std::sync::Arc;

use crate::admin::AdminClient;
use crate::auth::{AccountKitAuth, AccountKitAuthBuilder};
use crate::cache::{CacheConfig, CachedVerifier};
use crate::client::GraphClient;
use crate::config::Config;
use crate::error::{CheckError, Error};
use crate::shared::SharedTier;
use crate::verify::{GraphVerifier, MissingApplication, Verifier};

/// Everything a server needs, built once (outside `HttpServer::new`) and
/// cloned into each worker.
///
/// ```no_run
/// use actix_accountkit::{AccountKit, Config, VerifiedAccount};
/// use actix_web::{web, App, HttpServer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let kit = AccountKit::new(Config::builder("1234", "app-secret").build()?)?;
/// HttpServer::new(move || {
///     App::new()
///         .app_data(web::Data::new(kit.admin().clone()))
///         .wrap(kit.auth().clone())
///         .route("/me", web::get().to(|a: VerifiedAccount| async move { a.id().to_owned() }))
/// })
/// .bind("127.0.0.1:8080")?
/// .run()
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AccountKit {
    client: GraphClient,
    verifier: GraphVerifier,
    cache: CachedVerifier,
    auth: AccountKitAuth,
    admin: AdminClient,
}

type AuthSettings = Box<dyn FnOnce(AccountKitAuthBuilder) -> AccountKitAuthBuilder>;

/// Builder of [`AccountKit`].
pub struct AccountKitBuilder {
    config: Config,
    cache: CacheConfig,
    missing_application: MissingApplication,
    shared_tier: Option<Arc<dyn SharedTier>>,
    auth: Option<AuthSettings>,
}

impl fmt::Debug for AccountKitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKitBuilder")
            .field("config", &self.config)
            .field("cache", &self.cache)
            .field("missing_application", &self.missing_application)
            .field("shared_tier", &self.shared_tier)
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

impl AccountKitBuilder {
    /// Cache sizes and lifetimes. Default is [`CacheConfig::default`].
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// What to do when `/me` has no `application` object. Default is
    /// [`MissingApplication::Refuse`].
    pub fn missing_application(mut self, policy: MissingApplication) -> Self {
        self.missing_application = policy;
        self
    }

    /// A second cache tier shared with the other instances of the app,
    /// which also carries revocations between them (e.g.
    /// `actix_accountkit::redis::RedisTier`, feature `redis`). Default is
    /// none: the cache is local to this process.
    pub fn shared_tier(mut self, tier: impl SharedTier) -> Self {
        self.shared_tier = Some(Arc::new(tier));
        self
    }

    /// Settings of the middleware ([`AccountKit::auth`]): token sources,
    /// realm, answers. Default is [`AccountKitAuth`]'s defaults.
    ///
    /// ```
    /// # use actix_accountkit::{AccountKit, Config};
    /// use actix_accountkit::token::TokenSource;
    /// # fn f(config: Config) -> Result<AccountKit, actix_accountkit::Error> {
    /// let kit = AccountKit::builder(config)
    ///     .auth(|auth| auth.token_sources([TokenSource::cookie("ak_token")]))
    ///     .build()?;
    /// # Ok(kit) }
    /// ```
    pub fn auth(
        mut self,
        settings: impl FnOnce(AccountKitAuthBuilder) -> AccountKitAuthBuilder + 'static,
    ) -> Self {
        self.auth = Some(Box::new(settings));
        self
    }

    /// Builds the client, the verifier, the cache, the middleware and the
    /// admin client.
    ///
    /// # Errors
    ///
    /// A configuration the HTTP client refuses, a shared tier bound to
    /// another app, or invalid middleware settings.
    pub fn build(self) -> Result<AccountKit, Error> {
        let client = GraphClient::new(self.config)?;
        let verifier = GraphVerifier::builder(client.clone())
            .missing_application(self.missing_application)
            .build();
        let graph = verifier.clone();
        let verifier = Arc::new(verifier);
        let cache = match self.shared_tier {
            // A tier of another app is refused there: its entries were
            // verified for that app (a confused deputy).
            Some(tier) => CachedVerifier::with_shared_tier(verifier, self.cache, tier)?,
            None => CachedVerifier::from_arc(verifier, self.cache),
        };
        let shared: Arc<dyn Verifier> = Arc::new(cache.clone());
        let auth = AccountKitAuth::builder_arc(shared);
        let auth = match self.auth {
            Some(settings) => settings(auth),
            None => auth,
        };
        Ok(AccountKit {
            auth: auth.build()?,
            admin: AdminClient::new(client.clone(), cache.clone()),
            client,
            verifier: graph,
            cache,
        })
    }
}

impl AccountKit {
    /// Everything with default policies.
    ///
    /// # Errors
    ///
    /// A configuration the HTTP client refuses.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::builder(config).build()
    }

    /// A builder, to change the cache or policies.
    pub fn builder(config: Config) -> AccountKitBuilder {
        AccountKitBuilder {
            config,
            cache: CacheConfig::default(),
            missing_application: MissingApplication::default(),
            shared_tier: None,
            auth: None,
        }
    }

    /// Fails fast: confirms the app id and the Account Kit app secret with
    /// an app-token call (the verifier's credential self-check, whose
    /// verdict it remembers), and so that the endpoint answers. Run it at
    /// start-up, before serving.
    ///
    /// A [definite](CheckError::is_definite) failure means the server should
    /// not start: the credentials were refused ([`CheckError::Credentials`],
    /// naming the app id, never the secret), or the endpoint is the default
    /// one, whose service was shut down ([`CheckError::ServiceShutDown`],
    /// pointing at the emulator). Any other failure (an endpoint that cannot
    /// be reached, an outage, Graph code 2 answered to a call without
    /// credentials too) may be a deploy under way: warn and start
    /// anyway, rather than crash-loop a fleet; protected routes answer 503
    /// until it passes. Nothing it returns contains the app secret.
    ///
    /// ```
    /// use actix_accountkit::{AccountKit, Config};
    /// # use actix_accountkit::emulator::{Emulator, EmulatorApp};
    ///
    /// async fn start(kit: &AccountKit) -> Result<(), Box<dyn std::error::Error>> {
    ///     match kit.check().await {
    ///         Ok(()) => {}
    ///         Err(e) if e.is_definite() => return Err(e.into()), // do not start
    ///         Err(e) => tracing::warn!("starting anyway: {e}"),
    ///     }
    ///     // ... HttpServer::new(...).run().await
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = Emulator::builder()
    /// #     .app(EmulatorApp::new("390265671523337", "the-account-kit-app-secret"))
    /// #     .build()?;
    /// // In production: AccountKit::new(Config::from_env()?)?
    /// let config = Config::builder("390265671523337", "the-facebook-app-secret")
    ///     .base_url(emulator.base_url())
    ///     .build()?;
    /// let refused = start(&AccountKit::new(config)?).await.unwrap_err();
    /// assert!(refused.to_string().contains("Account Kit app secret"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`CheckError`]: credentials refused, endpoint unreachable (or the
    /// default endpoint, whose service was shut down), or another answer.
    pub async fn check(&self) -> Result<(), CheckError> {
        self.verifier
            .check_credentials()
            .await
            .map_err(|e| classify_check(self.client.config(), e))
    }

    /// The Graph client.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// The cached verifier (counters: [`CachedVerifier::stats`]).
    pub fn cache(&self) -> &CachedVerifier {
        &self.cache
    }

    /// The middleware, also usable as app data for the extractors.
    pub fn auth(&self) -> &AccountKitAuth {
        &self.auth
    }

    /// A builder of another middleware on the same verifier, e.g. for one
    /// scope with other settings; what either verifies counts for both.
    pub fn auth_builder(&self) -> AccountKitAuthBuilder {
        self.auth.to_builder()
    }

    /// The admin client, invalidating in the same cache.
    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }
}

/// Classifies the failure of a credentials check made with `config`.
///
/// The check ([`GraphVerifier::check_credentials`]) has already told a
/// refusal from an outage: our credentials refused while the service
/// answers is [`Error::CredentialsRefused`]; a code 2 left over means the
/// service answered code 2 to a call without credentials too, an outage
/// ([`CheckError::Unreachable`], not definite: an outage during a deploy
/// must not crash-loop a fleet).
pub(crate) fn classify_check(config: &Config, error: Error) -> CheckError {
    let base_url = config.base_url().as_str().trim_end_matches('/').to_owned();
    if error.is_credentials_refused() || error.is_invalid_token() {
        return CheckError::Credentials {
            app_id: config.app_id().to_owned(),
            source: error,
        };
    }
    let default_host = url::Url::parse(crate::config::DEFAULT_BASE_URL)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    if config.base_url().host_str() == default_host.as_deref() {
        return CheckError::ServiceShutDown {
            base_url,
            source: error,
        };
    }
    if error.is_unavailable() || error.is_app_misconfigured() {
        CheckError::Unreachable {
            base_url,
            source: error,
        }
    } else {
        CheckError::Unexpected {
            base_url,
            source: error,
        }
    }
}
