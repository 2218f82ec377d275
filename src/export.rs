//! CSV export of every account of an app: the documented export script,
//! on top of the accounts stream.
//!
//! The Account Kit API document ends with a Python script that lists every
//! account of an app (`GET /{app_id}/accounts`, following `paging.next`) and
//! writes it as CSV. This module does the same job with these differences:
//!
//! * **Header.** The first line is [`HEADER_LINE`], `ID, Phone, Email`, byte
//!   for byte as the script wrote it (with a space after each comma), so that
//!   whatever already reads the script's files keeps working. Strict CSV
//!   readers therefore see the column names `ID`, ` Phone` and ` Email`
//!   (leading spaces included), exactly as they did with the script's files.
//!   [`ExportOptions::header`] turns the line off (to append to an earlier
//!   part).
//! * **Rows.** One row per account, in listing order: the account id, the
//!   phone number (`+` and digits) and the email address. A missing phone
//!   or email is an empty field (the script wrote `None`). Fields are quoted
//!   by the [`csv`] crate when they need it (a comma, a quote or a line
//!   break in an email address); lines end with `\n`, as the script's did.
//!   Values are written verbatim: no spreadsheet formula escaping, which
//!   would alter every phone number (they start with `+`).
//! * **Retries.** Each page is fetched by the
//!   [`GraphClient`](crate::client::GraphClient), which retries transport
//!   errors, 5xx answers, Graph code 2 (Graph's "service temporarily
//!   unavailable", `is_transient: true`) and rate limiting, per the
//!   configured [`RetryPolicy`](crate::config::RetryPolicy) with
//!   exponential backoff and jitter. A page is fetched again with the same
//!   cursor, so a retried page is written once, whole: transient answers
//!   mid-way leave the file as a fault-free export would be. Anything else,
//!   or a failure that outlasts the retries, ends the export with an
//!   [`ExportError`] that keeps the cause. A code 2 that outlasts them is an
//!   outage or a wrong app id or secret (Account Kit answered both with code
//!   2): [`GraphClient::check_service`](crate::client::GraphClient::check_service)
//!   tells which.
//! * **Complete pages only.** A page is written to the output only once it
//!   has been fetched and encoded whole, then the output is flushed; on a
//!   failure, [`ExportProgress::bytes`] says how many bytes of the output are
//!   complete pages and [`ExportProgress::cursor`] where to resume.
//!
//! The writer is a blocking [`std::io::Write`]: the export writes one page
//! at a time (at most ~150 KB for 1,000 accounts) between two requests,
//! which is fine for a file or a buffer on an async runtime; wrap a file in
//! a [`BufWriter`](std::io::BufWriter) if you like, it is flushed after
//! every page.
//!
//! Files, temporary names, partial files and resuming are the business of
//! the caller; the `export_accounts` example shows one way (write to a
//! temporary file, rename on success, keep `<file>.partial` on failure,
//! `--after CURSOR` to resume).

use std::io::{self, Write};

use futures::{Stream, StreamExt};

use crate::client::LIMIT_RANGE;
use crate::error::Error;
use crate::types::{Account, AccountsPage};

/// The header line, as the documented export script wrote it (without the
/// line terminator): `ID, Phone, Email`.
pub const HEADER_LINE: &str = "ID, Phone, Email";
/// Accounts per page. Default is 1,000 (the largest the API allows), as in
/// the documented script.
pub const DEFAULT_LIMIT: u32 = 1000;

/// What to export and how; see [`AdminClient::export_csv`](crate::admin::AdminClient::export_csv).
///
/// ```
/// use actix_accountkit::export::ExportOptions;
///
/// let options = ExportOptions::new().limit(500).after("MTIz").header(false);
/// assert_eq!(options.limit, 500);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Accounts per page, 1–1000. Default is [`DEFAULT_LIMIT`].
    pub limit: u32,
    /// Start after this cursor (from [`ExportProgress::cursor`] of an
    /// earlier, failed export) instead of at the first account. Default is
    /// none.
    pub after: Option<String>,
    /// Whether to write [`HEADER_LINE`] first. Default is `true`.
    pub header: bool,
}

impl ExportOptions {
    /// The defaults: pages of [`DEFAULT_LIMIT`], from the first account,
    /// with the header line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accounts per page, 1–1000; other values are refused by the export
    /// before any request. Default is [`DEFAULT_LIMIT`].
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Resumes after this cursor. Default is none (from the start).
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }

    /// Whether to write the header line first; turn it off when appending
    /// to the part written before the cursor. Default is `true`.
    #[must_use]
    pub fn header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
            header: true,
        }
    }
}

/// How far an export got: after every page (progress callback), at the end
/// (the summary), and on failure (inside the [`ExportError`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportProgress {
    /// Pages written (empty pages included).
    pub pages: u64,
    /// Accounts written.
    pub accounts: u64,
    /// Bytes written to the output, header included: all of them complete
    /// pages. On failure, everything past this offset (if the writer failed
    /// half-way through a page) is not part of the export.
    pub bytes: u64,
    /// The cursor after the last account written (or the starting cursor,
    /// before the first page): resume with
    /// [`ExportOptions::after`]. `None` means "from the start": nothing was
    /// written after a cursor yet, or the service sent a page without
    /// cursors.
    pub cursor: Option<String>,
}

/// Why an export stopped. Both variants carry the progress made so far
/// (complete pages only) and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A page could not be fetched (after the client's retries), or the
    /// options were refused before any request ([`Error::InvalidLimit`]).
    #[error(
        "could not fetch the accounts after {} complete pages ({} accounts): {source}",
        progress.pages,
        progress.accounts
    )]
    Fetch {
        /// What went wrong (secrets scrubbed, URLs stripped).
        #[source]
        source: Error,
        /// What was written before.
        progress: ExportProgress,
    },
    /// The output refused a write or a flush.
    #[error(
        "could not write the CSV after {} complete pages ({} accounts): {source}",
        progress.pages,
        progress.accounts
    )]
    Write {
        /// The I/O error.
        #[source]
        source: io::Error,
        /// What was written completely before.
        progress: ExportProgress,
    },
}

impl ExportError {
    /// The progress made before the failure: complete pages only.
    pub fn progress(&self) -> &ExportProgress {
        match self {
            ExportError::Fetch { progress, .. } | ExportError::Write { progress, .. } => progress,
        }
    }

    /// The cursor to resume from; see [`ExportProgress::cursor`].
    pub fn resume_cursor(&self) -> Option<&str> {
        self.progress().cursor.as_deref()
    }
}

/// Writes the accounts of `pages` (a stream such as
/// [`GraphClient::account_pages`]) as CSV into `out`, calling `on_page`
/// after each page is written and flushed.
///
/// This is the engine of
/// [`AdminClient::export_csv`](crate::admin::AdminClient::export_csv); use
/// it directly to export from a stream of your own. `options.limit` and
/// `options.after` are the caller's business here (they shaped `pages`),
/// except that a limit outside 1–1000 is refused before anything is written.
///
/// [`GraphClient`]: crate::client::GraphClient
/// [`GraphClient::account_pages`]: crate::client::GraphClient::account_pages
pub async fn write_pages<S, W, F>(
    pages: S,
    mut out: W,
    options: &ExportOptions,
    mut on_page: F,
) -> Result<ExportProgress, ExportError>
where
    S: Stream<Item = Result<AccountsPage, Error>>,
    W: Write,
    F: FnMut(&ExportProgress),
{
    let mut progress = ExportProgress {
        cursor: options.after.clone(),
        ..ExportProgress::default()
    };
    if !LIMIT_RANGE.contains(&options.limit) {
        return Err(ExportError::Fetch {
            source: Error::InvalidLimit {
                limit: options.limit,
            },
            progress,
        });
    }
    let mut buf = Vec::with_capacity(64 * 1024);
    if options.header {
        buf.extend_from_slice(HEADER_LINE.as_bytes());
        buf.push(b'\n');
        commit(&mut out, &mut buf, &mut progress)?;
    }
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(source) => return Err(ExportError::Fetch { source, progress }),
        };
        if let Err(source) = encode(&page.data, &mut buf) {
            return Err(ExportError::Write { source, progress });
        }
        commit(&mut out, &mut buf, &mut progress)?;
        progress.pages += 1;
        progress.accounts += page.data.len() as u64;
        if !page.data.is_empty() {
            // A page with accounts but no cursor cannot be resumed after.
            progress.cursor = page.after_cursor().map(str::to_owned);
        }
        on_page(&progress);
    }
    Ok(progress)
}

/// Encodes one page's rows into `buf` (appending).
fn encode(accounts: &[Account], buf: &mut Vec<u8>) -> io::Result<()> {
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(buf);
    for account in accounts {
        let phone = account.phone.as_ref().map_or("", |p| p.number.as_str());
        let email = account.email.as_ref().map_or("", |e| e.address.as_str());
        csv.write_record([account.id.as_str(), phone, email])?;
    }
    csv.flush()
}

/// Writes `buf` whole to `out`, flushes, and counts the bytes as complete.
fn commit<W: Write>(
    out: &mut W,
    buf: &mut Vec<u8>,
    progress: &mut ExportProgress,
) -> Result<(), ExportError> {
    let written = out.write_all(buf).and_then(|()| out.flush());
    if let Err(source) = written {
        return Err(ExportError::Write {
            source,
            progress: progress.clone(),
        });
    }
    progress.bytes += buf.len() as u64;
    buf.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn page(json: &str) -> Result<AccountsPage, Error> {
        Ok(serde_json::from_str(json).unwrap())
    }

    fn export(
        pages: Vec<Result<AccountsPage, Error>>,
        options: &ExportOptions,
    ) -> (Vec<u8>, Result<ExportProgress, ExportError>) {
        let mut out = Vec::new();
        let result = futures::executor::block_on(write_pages(
            stream::iter(pages),
            &mut out,
            options,
            |_| {},
        ));
        (out, result)
    }

    #[test]
    fn quotes_fields_and_leaves_missing_ones_empty() {
        let pages = vec![
            page(
                r#"{"data":[{"id":"1","phone":{"number":"+15551234567","country_prefix":"1","national_number":"5551234567"}},
                  {"id":"2","email":{"address":"\"odd, one\"@example.com"}},
                  {"id":"3"}],
                  "paging":{"cursors":{"before":"b1","after":"a1"},"next":"http://x/next"}}"#,
            ),
            page(
                r#"{"data":[{"id":"4","email":{"address":"a\nb@example.com"}}],"paging":{"cursors":{"before":"b2","after":"a2"}}}"#,
            ),
        ];
        let (out, result) = export(pages, &ExportOptions::new());
        let progress = result.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ID, Phone, Email\n1,+15551234567,\n2,,\"\"\"odd, one\"\"@example.com\"\n3,,\n4,,\"a\nb@example.com\"\n"
        );
        assert_eq!((progress.pages, progress.accounts), (2, 4));
        assert_eq!(progress.bytes, text.len() as u64);
        assert_eq!(progress.cursor.as_deref(), Some("a2"));

        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[1][2], "\"odd, one\"@example.com");
    }

    #[test]
    fn a_failure_keeps_complete_pages_and_the_cursor() {
        let pages = vec![
            page(r#"{"data":[{"id":"1"}],"paging":{"cursors":{"before":"b1","after":"a1"}}}"#),
            Err(Error::Decode {
                status: 503,
                detail: "an error status without a JSON body".into(),
            }),
        ];
        let (out, result) = export(pages, &ExportOptions::new().after("a0").header(false));
        let err = result.unwrap_err();
        assert_eq!(out, b"1,,\n");
        assert_eq!(err.progress().bytes, 4);
        assert_eq!(err.resume_cursor(), Some("a1"));
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn an_empty_last_page_keeps_the_cursor() {
        let pages = vec![
            page(r#"{"data":[{"id":"1"}],"paging":{"cursors":{"before":"b1","after":"a1"}}}"#),
            page(r#"{"data":[]}"#),
        ];
        let (_, result) = export(pages, &ExportOptions::new());
        assert_eq!(result.unwrap().cursor.as_deref(), Some("a1"));
    }

    #[test]
    fn a_bad_limit_writes_nothing() {
        for limit in [0, 1001] {
            let (out, result) = export(vec![], &ExportOptions::new().limit(limit));
            assert!(out.is_empty());
            assert!(matches!(
                result,
                Err(ExportError::Fetch {
                    source: Error::InvalidLimit { .. },
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_failing_writer_reports_only_complete_bytes() {
        /// Accepts `room` bytes, then fails.
        struct Full {
            room: usize,
        }
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.room == 0 {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
                }
                let n = b.len().min(self.room);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let pages = vec![
            page(r#"{"data":[{"id":"1"}],"paging":{"cursors":{"after":"a1"}}}"#),
            page(r#"{"data":[{"id":"2"}],"paging":{"cursors":{"after":"a2"}}}"#),
        ];
        let header = HEADER_LINE.len() + 1;
        let result = futures::executor::block_on(write_pages(
            stream::iter(pages),
            Full { room: header + 6 },
            &ExportOptions::new(),
            |_| {},
        ));
        let err = result.unwrap_err();
        assert!(matches!(err, ExportError::Write { .. }));
        assert_eq!(err.progress().bytes, header as u64 + 4);
        assert_eq!(err.resume_cursor(), Some("a1"));
    }
}
