//! The admin client: everything the Graph API offers beyond verification,
//! for route handlers. Register it with `App::app_data(web::Data::new(…))`.
//!
//! Logout, invalidate-all and delete also revoke in the verification cache
//! ([`CachedVerifier::revoke`]), so a logged-out token is refused on the very
//! next request, with no TTL wait; with a [shared tier](crate::shared), on
//! the other instances too.

use std::io::Write;

use futures::Stream;

use crate::cache::CachedVerifier;
use crate::client::GraphClient;
use crate::error::Error;
use crate::export::{self, ExportError, ExportOptions, ExportProgress};
use crate::hash::token_hash;
use crate::shared::Revocation;
use crate::types::{Account, AccountsPage, TokenExchange};

/// Code exchange, logout, logout-everywhere, account deletion and the
/// accounts listing, keeping the verification cache consistent.
///
/// ```no_run
/// use actix_accountkit::admin::AdminClient;
/// use actix_accountkit::VerifiedAccount;
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
    /// An admin client that revokes in `cache` (the one the middleware
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
            // Known dead (logged out now, or already invalid): remembered as
            // refused. Otherwise only forgotten, to be asked again.
            let dead = match &result {
                Ok(()) => true,
                Err(e) => e.is_invalid_token(),
            };
            let revocation = Revocation::Token {
                hash: token_hash(access_token),
                refused_for: dead.then(|| cache.negative_ttl()),
            };
            cache.revoke(&revocation).await;
        }
        result
    }

    /// Logs every session of an account out, and forgets its cached tokens.
    pub async fn invalidate_all_tokens(&self, account_id: &str) -> Result<(), Error> {
        let result = self.client.invalidate_all_tokens(account_id).await;
        self.revoke_account(account_id, &result).await;
        result
    }

    /// Deletes an account, and forgets its cached tokens.
    pub async fn delete_account(&self, account_id: &str) -> Result<(), Error> {
        let result = self.client.delete_account(account_id).await;
        self.revoke_account(account_id, &result).await;
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

    /// Writes every account of the app into `out` as CSV, as the documented
    /// export script did: the header line `ID, Phone, Email`, then one row
    /// per account (id, phone number, email address; a missing one is an
    /// empty field), following `paging.next` from the start or from
    /// `options.after`. See the [export module](crate::export) for the
    /// format and the failure model.
    ///
    /// Each page is retried per the client's
    /// [`RetryPolicy`](crate::config::RetryPolicy) (transport errors, 5xx,
    /// Graph code 2, rate limiting); any other failure returns an
    /// [`ExportError`] holding the cause, the bytes of `out` that are
    /// complete pages, and the cursor to resume from.
    ///
    /// ```
    /// use actix_accountkit::{admin::AdminClient, client::GraphClient, config::Config};
    /// use actix_accountkit::export::ExportOptions;
    /// # use actix_accountkit::emulator::{Emulator, EmulatorApp};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = Emulator::builder()
    /// #     .app(EmulatorApp::new("390265671523337", "app-secret"))
    /// #     .seed_accounts(3)
    /// #     .build()?;
    /// # let base_url = emulator.base_url();
    /// let config = Config::builder("390265671523337", "app-secret")
    ///     .base_url(base_url) // or the default, https://graph.accountkit.com
    ///     .build()?;
    /// let admin = AdminClient::without_cache(GraphClient::new(config)?);
    ///
    /// let mut csv = Vec::new(); // or a std::fs::File
    /// let summary = admin.export_csv(&mut csv, &ExportOptions::new()).await?;
    /// assert_eq!(summary.accounts, 3);
    /// assert!(csv.starts_with(b"ID, Phone, Email\n"));
    /// # Ok(()) }
    /// ```
    pub async fn export_csv<W: Write>(
        &self,
        out: W,
        options: &ExportOptions,
    ) -> Result<ExportProgress, ExportError> {
        self.export_csv_with_progress(out, options, |_| {}).await
    }

    /// [`export_csv`](Self::export_csv), calling `on_page` after each page
    /// is written and flushed (for a progress bar, or to remember the
    /// resume cursor).
    pub async fn export_csv_with_progress<W, F>(
        &self,
        out: W,
        options: &ExportOptions,
        on_page: F,
    ) -> Result<ExportProgress, ExportError>
    where
        W: Write,
        F: FnMut(&ExportProgress),
    {
        let pages = self
            .client
            .account_pages(options.limit, options.after.clone());
        export::write_pages(pages, out, options, on_page).await
    }

    async fn revoke_account(&self, account_id: &str, result: &Result<(), Error>) {
        // Revoke on failure too: a request that fails half-way may still
        // have revoked at Account Kit, and a revocation only costs one call.
        if matches!(result, Err(Error::InvalidAccountId)) {
            return;
        }
        if let Some(cache) = &self.cache {
            let id = account_id.to_owned();
            cache.revoke(&Revocation::Account { id }).await;
        }
    }
}
