//! The real `imsyncd` binary under test, on a phone's private bus, with its
//! own HOME / XDG dirs (its "state") inside the test dir. Can be restarted
//! with the same state.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{self, Proc};
use crate::Result;

pub const SYNC1_NAME: &str = "org.imsync.Sync1";
pub const SYNC1_PATH: &str = "/org/imsync/Sync1";

/// The workspace's cargo target directory (`$CARGO_TARGET_DIR`, else `target/`
/// of this checkout).
pub fn workspace_target_root() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// Directory holding the workspace's binaries (`target/<profile>`), found from
/// the running executable: `target/<profile>/deps/<test>-<hash>` for tests,
/// `target/<profile>/<bin>` for binaries like the demo. `IMSYNC_BIN_DIR`
/// overrides it: a directory, or a profile name (`release`, `debug`) for
/// `target/<profile>` of this workspace (the benchmark uses `release`).
pub fn target_dir() -> Result<PathBuf> {
    if let Ok(d) = std::env::var("IMSYNC_BIN_DIR") {
        if !d.is_empty() && !d.contains('/') {
            return Ok(workspace_target_root().join(d));
        }
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().ok_or("current_exe has no parent")?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps" || n == "examples") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of a workspace binary (`imsyncd`, `imsync`) next to the test executable.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let p = target_dir()?.join(name);
    if !p.is_file() {
        return Err(format!(
            "{} not found: build the workspace first with `cargo build --workspace` \
             (or run `cargo test --workspace`, which builds it); IMSYNC_BIN_DIR overrides the directory",
            p.display()
        )
        .into());
    }
    Ok(p)
}

/// The daemon's state: every directory it may write to.
#[derive(Clone, Debug)]
pub struct DaemonDirs {
    pub base: PathBuf,
    pub home: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
    pub state: PathBuf,
    pub cache: PathBuf,
    pub runtime: PathBuf,
}

impl DaemonDirs {
    pub fn new(base: &Path) -> Result<DaemonDirs> {
        let d = DaemonDirs {
            base: base.to_path_buf(),
            home: base.join("home"),
            config: base.join("config"),
            data: base.join("data"),
            state: base.join("state"),
            cache: base.join("cache"),
            runtime: base.join("runtime"),
        };
        for p in [&d.home, &d.config, &d.data, &d.state, &d.cache, &d.runtime] {
            fs::create_dir_all(p)?;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&d.runtime, fs::Permissions::from_mode(0o700))?;
        Ok(d)
    }

    /// Every directory of the daemon's state (for secret scans).
    pub fn all(&self) -> Vec<&Path> {
        vec![&self.home, &self.config, &self.data, &self.state, &self.cache, &self.runtime]
    }
}

pub struct Daemon {
    root: PathBuf,
    bus_address: String,
    dirs: DaemonDirs,
    binary: Option<PathBuf>,
    proc: Option<Proc>,
    starts: u32,
    logs: Vec<PathBuf>,
    extra_env: Vec<(String, String)>,
}

impl Daemon {
    /// Prepare (not start) a daemon for the bus at `bus_address`, state in `base`.
    pub fn new(root: &Path, bus_address: &str, base: &Path) -> Result<Daemon> {
        Ok(Daemon {
            root: root.to_path_buf(),
            bus_address: bus_address.to_string(),
            dirs: DaemonDirs::new(base)?,
            binary: None,
            proc: None,
            starts: 0,
            logs: vec![],
            extra_env: vec![],
        })
    }

    /// Extra environment for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.into(), value.into()));
    }

    /// Start the daemon and wait until it owns `org.imsync.Sync1`.
    pub async fn start(&mut self) -> Result<()> {
        if self.proc.is_some() {
            return Err("imsyncd already running".into());
        }
        let binary = match &self.binary {
            Some(b) => b.clone(),
            None => workspace_binary("imsyncd")?,
        };
        self.binary = Some(binary.clone());
        self.starts += 1;
        let log = self.dirs.base.join(format!("imsyncd.{}.log", self.starts));
        let (out, err) = process::log_file(&log)?;
        let mut cmd = process::clean_command(&binary, &self.root);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", self.dirs.runtime.join("no-system-bus").display()))
            .env("HOME", &self.dirs.home)
            .env("XDG_CONFIG_HOME", &self.dirs.config)
            .env("XDG_DATA_HOME", &self.dirs.data)
            .env("XDG_STATE_HOME", &self.dirs.state)
            .env("XDG_CACHE_HOME", &self.dirs.cache)
            .env("XDG_RUNTIME_DIR", &self.dirs.runtime)
            .env("RUST_LOG", std::env::var("IMSYNC_TEST_RUST_LOG").unwrap_or_else(|_| "debug".into()))
            .env("RUST_BACKTRACE", "1")
            .stdout(out)
            .stderr(err);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.logs.push(log.clone());
        let mut proc = Proc::spawn("imsyncd", &mut cmd)?.with_grace(Duration::from_secs(10));
        let conn = zbus::connection::Builder::address(self.bus_address.as_str())?.build().await?;
        let mut exited = None;
        let owned = process::poll_async(Duration::from_secs(30), Duration::from_millis(25), || {
            let conn = &conn;
            let ex = proc.try_exited();
            if ex.is_some() {
                exited = ex;
            }
            async move {
                if exited.is_some() {
                    return Some(false);
                }
                crate::bus::name_has_owner(conn, SYNC1_NAME).await.ok().filter(|o| *o)
            }
        })
        .await;
        if owned != Some(true) {
            let why = match exited {
                Some(st) => format!("imsyncd exited ({st}) before owning {SYNC1_NAME}"),
                None => format!("imsyncd did not own {SYNC1_NAME} within 30 s"),
            };
            drop(proc);
            return Err(format!("{why}\n{}", process::tail(&log, 4000)).into());
        }
        self.proc = Some(proc);
        Ok(())
    }

    /// SIGTERM and wait for the exit (SIGKILL after 10 s). Returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.take().and_then(|mut p| p.stop())
    }

    /// Stop, then start again with the same state.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start().await
    }

    pub fn is_running(&mut self) -> bool {
        match self.proc.as_mut() {
            Some(p) => p.try_exited().is_none(),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.pid())
    }

    pub fn dirs(&self) -> &DaemonDirs {
        &self.dirs
    }

    /// Log files of every start so far (stdout + stderr, RUST_LOG=debug).
    pub fn log_paths(&self) -> &[PathBuf] {
        &self.logs
    }

    /// The log of the current (last) start.
    pub fn log_path(&self) -> Option<&Path> {
        self.logs.last().map(|p| p.as_path())
    }

    /// All logs concatenated (lossy UTF-8).
    pub fn logs(&self) -> String {
        self.logs.iter().map(|p| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned()).collect()
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.log_path().map(|p| process::tail(p, max)).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
