//! `accountkit-export`: every account of an Account Kit app to CSV, the
//! export script of the Account Kit API document, done properly.
//!
//! ```text
//! cargo install actix-accountkit --features cli
//! ACCOUNTKIT_APP_SECRET=... accountkit-export -a APP_ID \
//!     [-l 1000] [-f accountkit_export.csv] [-v v1.3] [--base-url URL] [--after CURSOR]
//! ```
//!
//! (From a clone: `cargo run --features cli --bin accountkit-export -- …`,
//! or `cargo run --example export_accounts -- …`, which is this same
//! program.)
//!
//! * Same flags as the script (`-s/--appsecret` may instead come from
//!   `ACCOUNTKIT_APP_SECRET`, which stays out of shell history), plus
//!   `--base-url` (e.g. an emulator) and `--after` (resume).
//! * Same header line and columns as the script (`ID, Phone, Email`), real
//!   CSV quoting, an empty field for a missing phone or email.
//! * Progress on stderr; a one-line summary at the end.
//! * Retries: transport errors, 5xx, Graph code 2 (an outage, or a wrong app
//!   id or secret: the answer cannot tell) and rate limiting are retried 3
//!   times per page with exponential backoff (0.5 s, 1 s, 2 s, jittered);
//!   anything else stops the export. A code 2 that outlasts the retries is
//!   told apart with one credential-free request: Account Kit down, or
//!   refusing the app id or secret.
//! * Nothing lost, nothing half-written: the CSV is written to a temporary
//!   file next to `FILE` and renamed to `FILE` on success. On failure (or
//!   Ctrl-C) the complete pages fetched so far are kept in `FILE.partial`
//!   and the cursor to resume from is printed; run the same command with
//!   `--after CURSOR` to fetch the rest: it continues `FILE.partial` and,
//!   on success, leaves one complete `FILE` and removes `FILE.partial`.
//!
//! Exit status: 0 on success, 1 when the export failed (see the message and
//! the partial file), 2 for bad flags or configuration (nothing was
//! requested), 130 when interrupted.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix_accountkit::admin::AdminClient;
use actix_accountkit::client::GraphClient;
use actix_accountkit::config::{ApiVersion, Config, RetryPolicy, DEFAULT_BASE_URL};
use actix_accountkit::export::{ExportError, ExportOptions, ExportProgress, DEFAULT_LIMIT};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tempfile::NamedTempFile;

/// Per-attempt timeout of one page request (a page of 1,000 accounts is
/// about 150 KB).
const TIMEOUT: Duration = Duration::from_secs(30);
/// Retries per page, as the documented script did.
const RETRIES: u32 = 3;

/// Export every account of an Account Kit app to a CSV file.
///
/// Writes the header line `ID, Phone, Email`, then one row per account.
/// The file is written under a temporary name and renamed when complete; on
/// failure the complete pages are kept in FILE.partial and the cursor to
/// resume from is printed: rerun with --after CURSOR to finish the export.
#[derive(Parser)]
#[command(name = "accountkit-export", disable_version_flag = true)]
struct Args {
    /// Your Facebook app id (decimal).
    #[arg(short = 'a', long = "appid", value_name = "APP_ID", value_parser = parse_app_id)]
    appid: String,

    /// Your Account Kit app secret (not the Facebook app secret). Prefer the
    /// environment variable, which keeps it out of shell history.
    #[arg(
        short = 's',
        long = "appsecret",
        value_name = "SECRET",
        env = "ACCOUNTKIT_APP_SECRET",
        hide_env_values = true
    )]
    appsecret: String,

    /// Number of accounts per page, 1 to 1000.
    #[arg(short = 'l', long, value_name = "N", default_value_t = DEFAULT_LIMIT, value_parser = parse_limit)]
    limit: u32,

    /// Name of the output file.
    #[arg(
        short = 'f',
        long,
        value_name = "FILE",
        default_value = "accountkit_export.csv"
    )]
    file: PathBuf,

    /// Graph API version, v<major>.<minor>.
    #[arg(short = 'v', long, value_name = "VERSION", default_value = "v1.3", value_parser = parse_version)]
    version: String,

    /// Graph API endpoint (e.g. an Account Kit emulator).
    #[arg(long, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,

    /// Resume a failed export after this cursor (printed by the failed
    /// run): continues FILE.partial if it exists, else writes only the
    /// accounts after the cursor, without the header line.
    #[arg(long, value_name = "CURSOR", value_parser = parse_cursor)]
    after: Option<String>,
}

fn parse_app_id(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err("the app id must be the decimal Facebook app id".to_owned())
    }
}

fn parse_limit(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(limit) if (1..=1000).contains(&limit) => Ok(limit),
        _ => Err("limit should be in the range 1-1000".to_owned()),
    }
}

fn parse_version(s: &str) -> Result<String, String> {
    ApiVersion::parse(s)
        .map(|v| v.as_str().to_owned())
        .map_err(|_| {
            "double check your api version number: expected v<major>.<minor>, e.g. v1.3".to_owned()
        })
}

fn parse_cursor(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 4096 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err(
            "a cursor is printable ASCII without spaces, as the failed export printed it"
                .to_owned(),
        )
    }
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

fn run(args: Args) -> Result<(), ExitCode> {
    let config = Config::builder(args.appid.as_str(), args.appsecret)
        .api_version(args.version)
        .base_url(args.base_url)
        .timeout(TIMEOUT)
        .retry_policy(RetryPolicy {
            max_retries: RETRIES,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        })
        .build()
        .map_err(|e| fail(EXIT_USAGE, e))?;
    let admin = GraphClient::new(config)
        .map(AdminClient::without_cache)
        .map_err(|e| fail(EXIT_USAGE, e))?;

    let file = args.file;
    let partial = with_suffix(&file, ".partial");
    if args.after.is_none() && partial.exists() {
        return Err(fail(
            EXIT_USAGE,
            format!(
                "{} is left from an earlier export: finish it with --after CURSOR (the cursor \
                 that export printed), or delete it to start over",
                partial.display()
            ),
        ));
    }

    let mut temp = temp_file_next_to(&file).map_err(|e| fail(EXIT_FAILED, e))?;
    // Bytes of the temporary file that are complete pages before this run.
    let mut carried = 0;
    let mut options = ExportOptions::new().limit(args.limit);
    let mut continues_partial = false;
    if let Some(after) = &args.after {
        options = options.after(after.as_str()).header(false);
        if partial.exists() {
            carried = copy_partial(&partial, temp.as_file_mut()).map_err(|e| {
                fail(
                    EXIT_FAILED,
                    format!("cannot continue {}: {e}", partial.display()),
                )
            })?;
            continues_partial = true;
            eprintln!("continuing {} after cursor {after}", partial.display());
        } else {
            eprintln!(
                "note: no {} to continue: {} will hold only the accounts after the cursor, \
                 without the header line; append it to the earlier part",
                partial.display(),
                file.display()
            );
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(EXIT_FAILED, format!("cannot start the async runtime: {e}")))?;

    let bar = progress_bar();
    let started = Instant::now();
    let mut last = ExportProgress::default();
    last.cursor = options.after.clone();
    let outcome = runtime.block_on(async {
        let export = admin.export_csv_with_progress(temp.as_file_mut(), &options, |p| {
            bar.set_position(p.accounts);
            bar.set_message(format!("{} pages", p.pages));
            last = p.clone();
        });
        let interrupted = async {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handling available: never interrupted.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = export => Some(result),
            () = interrupted => None,
        }
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    match outcome {
        Some(Ok(done)) => {
            finish(temp, &file)
                .map_err(|e| fail(EXIT_FAILED, format!("cannot write {}: {e}", file.display())))?;
            if continues_partial {
                if let Err(e) = std::fs::remove_file(&partial) {
                    eprintln!(
                        "warning: {} is complete, but {} could not be removed: {e}",
                        file.display(),
                        partial.display()
                    );
                }
            }
            let secs = elapsed.as_secs_f64();
            eprintln!(
                "exported {} accounts in {} pages to {} in {secs:.1} s ({:.0} accounts/s){}",
                done.accounts,
                done.pages,
                file.display(),
                done.accounts as f64 / secs.max(1e-3),
                if continues_partial {
                    ", completing the partial export"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Some(Err(error)) => {
            eprintln!("error: {}", describe(&error));
            if matches!(&error, ExportError::Fetch { source, .. } if source.is_app_misconfigured())
            {
                // Code 2 is an outage or our credentials refused: a service
                // that answers a call without credentials is up.
                if runtime.block_on(admin.client().check_service()).is_ok() {
                    eprintln!(
                        "hint: Account Kit is up and answers code 2 to this app's token: it \
                         refuses the app id or app secret; check both (the Account Kit app \
                         secret, not the Facebook one)"
                    );
                } else {
                    eprintln!(
                        "hint: code 2 is Account Kit's \"service temporarily unavailable\", and \
                         it is not answering: resume later with --after"
                    );
                }
            }
            keep_partial(temp, carried, error.progress(), &partial, &file, &options);
            Err(ExitCode::from(EXIT_FAILED))
        }
        None => {
            eprintln!("interrupted");
            keep_partial(temp, carried, &last, &partial, &file, &options);
            Err(ExitCode::from(EXIT_INTERRUPTED))
        }
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} {human_pos} accounts, {msg}, {per_sec}",
    ) {
        bar.set_style(style);
    }
    bar.set_message("0 pages");
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `FILE` + suffix, e.g. `accountkit_export.csv.partial`.
fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// A temporary file in the directory of `file` (so that the final rename
/// stays on one file system), deleted if dropped.
fn temp_file_next_to(file: &Path) -> io::Result<NamedTempFile> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = file.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file name", file.display()),
        )
    })?;
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create a temporary file in {}: {e}", dir.display()),
            )
        })
}

/// Copies the partial file into the temporary one; refuses one that does
/// not end with a complete line (it was not written by this command).
fn copy_partial(partial: &Path, temp: &mut File) -> io::Result<u64> {
    let mut source = File::open(partial)?;
    let copied = io::copy(&mut source, temp)?;
    if copied > 0 {
        let mut last = [0u8];
        source.seek(SeekFrom::End(-1))?;
        source.read_exact(&mut last)?;
        if last[0] != b'\n' {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it does not end with a complete line",
            ));
        }
    }
    Ok(copied)
}

/// Makes the temporary file durable and renames it to `file`.
fn finish(temp: NamedTempFile, file: &Path) -> io::Result<()> {
    temp.as_file().sync_all()?;
    temp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// Keeps the complete pages (cut at the last complete byte) as
/// `FILE.partial` and says how to resume.
fn keep_partial(
    temp: NamedTempFile,
    carried: u64,
    progress: &ExportProgress,
    partial: &Path,
    file: &Path,
    options: &ExportOptions,
) {
    if carried == 0 && progress.accounts == 0 {
        eprintln!("nothing was fetched; {} is untouched", file.display());
        if let Some(after) = &options.after {
            eprintln!("resume cursor: {after}");
        }
        return;
    }
    let complete = carried + progress.bytes;
    let kept = temp
        .as_file()
        .set_len(complete)
        .and_then(|()| temp.as_file().sync_all())
        .and_then(|()| temp.persist(partial).map(drop).map_err(|e| e.error));
    if let Err(e) = kept {
        eprintln!(
            "error: could not keep the partial export as {}: {e}",
            partial.display()
        );
        return;
    }
    eprintln!(
        "kept the complete pages in {} ({} accounts fetched by this run)",
        partial.display(),
        progress.accounts
    );
    match &progress.cursor {
        Some(cursor) => {
            eprintln!("resume cursor: {cursor}");
            eprintln!(
                "to finish, run the same command with --after {cursor} (it continues {})",
                partial.display()
            );
        }
        None => eprintln!(
            "the service sent no cursor to resume from: delete {} and start over",
            partial.display()
        ),
    }
}

/// The error and every cause below it, each once.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
