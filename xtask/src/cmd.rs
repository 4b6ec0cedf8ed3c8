//! Running host commands with errors that quote the command and what it printed.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::layout::Layout;

/// A command to run; built like `std::process::Command`, run with a clear error.
pub struct Cmd {
    inner: Command,
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.display())
    }
}

pub fn cmd(program: impl AsRef<OsStr>) -> Cmd {
    Cmd {
        inner: Command::new(program),
    }
}

/// The cargo that runs xtask, for the builds and tests xtask starts. `cargo run` hands
/// xtask its own package's variables (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...); build
/// scripts that watch them (ring's does) would see them change between xtask's build and
/// the nested one, and rebuild — with everything above them — on every run.
pub fn cargo() -> Cmd {
    let mut inner = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let package = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            );
        if package {
            inner.env_remove(key.as_ref());
        }
    }
    Cmd { inner }
}

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.inner.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    fn display(&self) -> String {
        let mut s = self.inner.get_program().to_string_lossy().into_owned();
        for a in self.inner.get_args() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Runs to completion and returns stdout; fails with stderr quoted.
    pub fn output(mut self) -> Result<String> {
        let shown = self.display();
        let out = self
            .inner
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{shown}`"))?;
        if !out.status.success() {
            bail!(
                "`{shown}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs to completion, discarding output; fails with stderr quoted.
    pub fn run(self) -> Result<()> {
        self.output().map(drop)
    }

    /// Runs with the terminal attached (for long builds and tests whose output the user
    /// should see as it happens).
    pub fn run_inherit(mut self) -> Result<()> {
        let shown = self.display();
        let status = self
            .inner
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("could not start `{shown}`"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        Ok(())
    }

    /// True when the command exits 0; its output is discarded. For probes.
    pub fn succeeds(mut self) -> bool {
        self.inner
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn into_inner(self) -> Command {
        self.inner
    }
}

/// A `go` command with the cache's module and build caches, offline-safe settings and
/// static linking.
pub fn go(layout: &Layout, dir: &Path) -> Cmd {
    cmd("go")
        .current_dir(dir)
        .env("GOMODCACHE", layout.go_mod_cache())
        .env("GOCACHE", layout.go_build_cache())
        .env("GOFLAGS", "-mod=mod")
        // Fail instead of fetching another toolchain.
        .env("GOTOOLCHAIN", "local")
        // The proxy's checksum database has no entries for several of these tags, and
        // sum.golang.org itself is not reachable from the development machines.
        .env("GOSUMDB", "off")
        .env("GOWORK", "off")
        .env("CGO_ENABLED", "0")
}
