//! The `accountkit-export` command (src/bin/accountkit-export.rs, cargo
//! feature `cli`), runnable as the example it used to be:
//!
//! ```text
//! ACCOUNTKIT_APP_SECRET=... cargo run --example export_accounts -- -a APP_ID \
//!     [-l 1000] [-f accountkit_export.csv] [-v v1.3] [--base-url URL] [--after CURSOR]
//! ```
//!
//! Installed: `cargo install actix-accountkit --features cli`.

#[path = "../src/bin/accountkit-export.rs"]
mod command;

fn main() -> std::process::ExitCode {
    command::main()
}
