//! Wiring: config → client → verifier → cache → middleware and admin client
//! sharing the same cache, in one call.

use std::sync::Arc;

use crate::admin::AdminClient;
use crate::cache::{CacheConfig, CachedVerifier};
use crate::client::GraphClient;
use crate::config::Config;
use crate::error::Error;
use crate::middleware::AccountKitAuth;
use crate::shared::SharedTier;
use crate::verify::{GraphVerifier, MissingApplication};

/// Everything a server needs, built once (outside `HttpServer::new`) and
/// cloned into each worker.
///
/// ```no_run
/// use actix_accountkit::{AccountKit, config::Config, extract::VerifiedAccount};
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
    cache: CachedVerifier,
    auth: AccountKitAuth,
    admin: AdminClient,
}

/// Builder of [`AccountKit`].
#[derive(Debug)]
pub struct AccountKitBuilder {
    config: Config,
    cache: CacheConfig,
    missing_application: MissingApplication,
    shared_tier: Option<Arc<dyn SharedTier>>,
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

    /// Builds the client, the verifier, the cache, the middleware and the
    /// admin client.
    pub fn build(self) -> Result<AccountKit, Error> {
        let client = GraphClient::new(self.config)?;
        let verifier = GraphVerifier::builder(client.clone())
            .missing_application(self.missing_application)
            .build();
        let verifier = Arc::new(verifier);
        let cache = match self.shared_tier {
            // A tier of another app is refused there: its entries were
            // verified for that app (a confused deputy).
            Some(tier) => CachedVerifier::with_shared_tier(verifier, self.cache, tier)?,
            None => CachedVerifier::from_arc(verifier, self.cache),
        };
        Ok(AccountKit {
            auth: AccountKitAuth::new(cache.clone()),
            admin: AdminClient::new(client.clone(), cache.clone()),
            client,
            cache,
        })
    }
}

impl AccountKit {
    /// Everything with default policies.
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
        }
    }

    /// The Graph client.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// The cached verifier (counters: [`CachedVerifier::stats`]).
    pub fn cache(&self) -> &CachedVerifier {
        &self.cache
    }

    /// The middleware, also usable as app data for the extractors. Adjust
    /// it with its builder methods (`realm`, `token_sources`...).
    pub fn auth(&self) -> &AccountKitAuth {
        &self.auth
    }

    /// Replaces the middleware settings (same verifier).
    pub fn with_auth(mut self, f: impl FnOnce(AccountKitAuth) -> AccountKitAuth) -> Self {
        self.auth = f(self.auth);
        self
    }

    /// The admin client, evicting from the same cache.
    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }
}
