//! The admin client: everything the Graph API offers beyond verification,
//! for route handlers. Register it with `App::app_data(web::Data::new(…))`.
//!
//! Logout, invalidate-all and delete also evict the verification cache, so
//! a logged-out token is refused on the very next request, with no TTL wait.
//! When the cache has a [shared tier](crate::shared), they then publish the
//! revocation there, so that the other instances evict it too.

use futures::Stream;

use crate::cache::{token_hash, CachedVerifier};
use crate::client::GraphClient;
use crate::error::Error;
use crate::shared::Revocation;
use crate::types::{Account, AccountsPage, TokenExchange};

/// Code exchange, logout, logout-everywhere, account deletion and the
/// accounts listing, keeping the verification cache consistent.
///
/// ```no_run
/// use actix_accountkit::admin::AdminClient;
/// use actix_accountkit::extract::VerifiedAccount;
/// use actix_web::{web, HttpResponse};
///
/// async fn logout(admin: web::Data<AdminClient>, account: VerifiedAccount) -> HttpResponse {
///     match admin.logout(account.token()).await {
///         Ok(()) => HttpResponse::NoContent().finish(),
///         Err(e) => HttpResponse::BadGateway().body(e.to_string()),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct AdminClient {
    client: GraphClient,
    cache: Option<CachedVerifier>,
}

impl AdminClient {
    /// An admin client that evicts from `cache` (the one the middleware
    /// uses) on every revocation.
    pub fn new(client: GraphClient, cache: CachedVerifier) -> Self {
        Self {
            client,
            cache: Some(cache),
        }
    }

    /// An admin client with no cache to keep consistent.
    pub fn without_cache(client: GraphClient) -> Self {
        Self {
            client,
            cache: None,
        }
    }

    /// The Graph client.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// The cache kept consistent, if any.
    pub fn cache(&self) -> Option<&CachedVerifier> {
        self.cache.as_ref()
    }

    /// Exchanges an authorization code (from the authorization code flow)
    /// for a user access token. Codes are single-use.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenExchange, Error> {
        self.client.exchange_code(code).await
    }

    /// Logs one token out at Account Kit; the cache then remembers it as
    /// refused. If the call fails, the token is still dropped from the cache
    /// so that the next request asks Account Kit again.
    ///
    /// With a shared tier, returns once the revocation is published there
    /// (bounded by the tier's timeout; an unreachable tier never makes the
    /// logout fail).
    pub async fn logout(&self, access_token: &str) -> Result<(), Error> {
        let result = self.client.logout(access_token).await;
        if let Some(cache) = &self.cache {
            let refused = match &result {
                Ok(()) => true,
                Err(e) => e.is_invalid_token(),
            };
            if refused {
                cache.revoke_token(access_token);
            } else {
                cache.evict_token(access_token);
            }
            let hash = token_hash(access_token);
            self.publish(Revocation::Token { hash, refused }).await;
        }
        result
    }

    /// Logs every session of an account out, and forgets its cached tokens.
    pub async fn invalidate_all_tokens(&self, account_id: &str) -> Result<(), Error> {
        let result = self.client.invalidate_all_tokens(account_id).await;
        self.evict_account(account_id, &result).await;
        result
    }

    /// Deletes an account, and forgets its cached tokens.
    pub async fn delete_account(&self, account_id: &str) -> Result<(), Error> {
        let result = self.client.delete_account(account_id).await;
        self.evict_account(account_id, &result).await;
        result
    }

    /// One page of the app's accounts; see [`GraphClient::accounts_page`].
    pub async fn accounts_page(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<AccountsPage, Error> {
        self.client.accounts_page(limit, after).await
    }

    /// Every account of the app; see [`GraphClient::accounts`].
    pub fn accounts(
        &self,
        limit: u32,
    ) -> impl Stream<Item = Result<Account, Error>> + Send + 'static {
        self.client.accounts(limit)
    }

    async fn evict_account(&self, account_id: &str, result: &Result<(), Error>) {
        // Evict on failure too: a request that fails half-way may still
        // have revoked at Account Kit, and an eviction only costs one call.
        if matches!(result, Err(Error::InvalidAccountId)) {
            return;
        }
        if let Some(cache) = &self.cache {
            cache.evict_account(account_id);
            let id = account_id.to_owned();
            self.publish(Revocation::Account { id }).await;
        }
    }

    /// Tells the cache's shared tier, if any, after a local revocation.
    async fn publish(&self, revocation: Revocation) {
        if let Some(tier) = self.cache.as_ref().and_then(CachedVerifier::shared_tier) {
            tier.publish(&revocation).await;
        }
    }
}
