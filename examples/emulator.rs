//! The `accountkit-emulator` command (src/bin/accountkit-emulator.rs, cargo
//! feature `cli`), runnable as the example it used to be:
//!
//! ```text
//! cargo run --example emulator --features emulator -- --addr 127.0.0.1:8787 \
//!     --app-id 1234 --app-secret SECRET [--accounts N] [--require-appsecret-proof]
//! ```
//!
//! Installed: `cargo install actix-accountkit --features cli`.

#[path = "../src/bin/accountkit-emulator.rs"]
mod command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    command::main()
}
