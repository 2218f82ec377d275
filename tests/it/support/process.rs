//! Programs run as child processes: the crate's examples (built on demand)
//! and binaries, read line by line for readiness, and always killed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// The binary of the example `name`, built from the current sources.
///
/// Cargo builds examples for a plain `cargo test`, but not for
/// `cargo test --test it`, and gives tests no path to them (there is no
/// `CARGO_BIN_EXE_` for examples): a binary found there may be missing or
/// older than the sources. So the first caller in this process runs
/// `cargo build --example NAME` with the cargo, target directory, profile
/// and features of this test binary (a no-op when it is up to date: cargo
/// releases its build lock before running tests), and the binary is found
/// in `<target>/<profile>/examples/`, beside this binary's `deps/`.
///
/// Features: `--all-features` when this binary has every optional feature
/// this test crate knows of (the README's `cargo test --all-features`), so
/// that the example is the one that command builds and nothing is rebuilt;
/// otherwise the ones it has.
pub fn example_bin(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<&'static str, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    // Held while building: one cargo at a time from this process.
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bin) = built.get(name) {
        return bin.clone();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("unexpected profile directory {}", profile_dir.display()),
    };
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["build", "--quiet", "--example", name])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--profile", profile]);
    if cfg!(all(feature = "redis", feature = "cli")) {
        cargo.arg("--all-features");
    } else {
        let mut features = vec!["emulator"];
        if cfg!(feature = "redis") {
            features.push("redis");
        }
        if cfg!(feature = "cli") {
            features.push("cli");
        }
        cargo.args(["--features", &features.join(",")]);
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name} failed");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} was not built", bin.display());
    built.insert(name, bin.clone());
    bin
}

/// Removes every `ACCOUNTKIT_*` variable and the proxy settings from the
/// child's environment: a child sees only what the test gives it.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let upper = name.to_string_lossy().to_ascii_uppercase();
        if upper.starts_with("ACCOUNTKIT_")
            || matches!(
                upper.as_str(),
                "HTTP_PROXY" | "HTTPS_PROXY" | "ALL_PROXY" | "NO_PROXY" | "RUST_LOG"
            )
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A child process with its output piped; killed (and reaped) when dropped,
/// so that a failing test leaves nothing running.
pub struct Spawned {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// Everything read from stdout so far.
    seen: String,
    /// Whether stdout ended (the child exited, or is exiting).
    ended: bool,
    /// stderr, read on its own thread (a full pipe would block the child).
    stderr: Option<JoinHandle<String>>,
}

/// How a child ended, and everything it wrote.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// stdout and stderr, for assertion messages and leak checks.
    pub fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl Spawned {
    /// Starts `cmd` with stdout and stderr piped and stdin closed.
    pub fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        Self {
            child,
            stdout,
            seen: String::new(),
            ended: false,
            stderr: Some(stderr),
        }
    }

    /// Whether the child has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id, e.g. to signal it.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout up to the first line starting with `prefix` and returns
    /// the rest of that line, trimmed: the readiness line a server prints.
    /// `None` if stdout ended first (the child exited).
    pub fn line_starting_with(&mut self, prefix: &str) -> Option<String> {
        loop {
            let mut line = Vec::new();
            match self.stdout.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    self.ended = true;
                    return None;
                }
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&line);
            self.seen.push_str(&line);
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.trim().to_owned());
            }
        }
    }

    /// What stdout held so far (up to the last line read).
    pub fn stdout_so_far(&self) -> &str {
        &self.seen
    }

    /// Waits for the child to exit on its own, and collects its output.
    pub fn wait(mut self) -> Finished {
        let mut rest = Vec::new();
        let _ = self.stdout.read_to_end(&mut rest);
        self.seen.push_str(&String::from_utf8_lossy(&rest));
        let status = self.child.wait().expect("wait for the child");
        self.finish(status)
    }

    /// Ends the child and collects its output: waits for it if its stdout
    /// already ended (it exited on its own, and its status is its own),
    /// kills it otherwise (a server still serving).
    pub fn end(self) -> Finished {
        if self.ended {
            self.wait()
        } else {
            self.kill()
        }
    }

    /// Kills the child and collects its output.
    pub fn kill(mut self) -> Finished {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for the child");
        let mut rest = Vec::new();
        let _ = self.stdout.read_to_end(&mut rest);
        self.seen.push_str(&String::from_utf8_lossy(&rest));
        self.finish(status)
    }

    fn finish(&mut self, status: ExitStatus) -> Finished {
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr,
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A no-op after `wait` or `kill`; after a panic, the child dies here.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The demo example run as a child process on 127.0.0.1, port 0, with one
/// worker, configured by `vars` alone (nothing else of the test's
/// environment reaches it); killed when dropped.
pub fn demo(vars: &[(&str, &str)]) -> Spawned {
    let mut cmd = Command::new(example_bin("demo"));
    clean_env(&mut cmd)
        .args(["--addr", "127.0.0.1:0", "--workers", "1"])
        .envs(vars.iter().copied());
    Spawned::start(&mut cmd)
}

/// The line the demo prints once its socket is bound (after the check).
pub const SERVING: &str = "Demo API:";
