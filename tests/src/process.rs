//! Child processes of the harness: spawned with a marker in their environment,
//! stopped by PID (TERM, then KILL) and reaped; stragglers (processes started by
//! a bus on our behalf, e.g. EDS factories, SyncEvolution helpers) are found by
//! that marker in `/proc/*/environ`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable put on every process the harness starts (inherited
/// by everything those start): its value is the test's root directory.
pub const MARKER_DIR: &str = "IMSYNC_HARNESS_DIR";
/// PID of the test process that owns a harness process; used to clean up
/// after test processes that died without running their destructors.
pub const MARKER_OWNER: &str = "IMSYNC_HARNESS_OWNER";

/// A clean environment for a harness process: only `PATH`, the locale, the
/// time zone and the two markers. Callers add what the process needs.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>, root: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env(MARKER_DIR, root)
        .env(MARKER_OWNER, std::process::id().to_string())
        // same process group as the test: a Ctrl-C on `cargo test` (which
        // skips all destructors) ends the harness's processes too
        .stdin(Stdio::null());
    c
}

/// Open (append) a log file for a child's stdout/stderr.
pub fn log_file(path: &Path) -> std::io::Result<(Stdio, Stdio)> {
    let f = fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

/// A child process that is stopped (TERM, then KILL after `grace`) and
/// reaped when dropped.
pub struct Proc {
    name: String,
    child: Option<Child>,
    grace: Duration,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> std::io::Result<Self> {
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot start {name} ({:?}): {e}", cmd.get_program()))
        })?;
        Ok(Self::from_child(name, child))
    }

    pub fn from_child(name: &str, child: Child) -> Self {
        Proc { name: name.to_string(), child: Some(child), grace: Duration::from_secs(5) }
    }

    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// `Some(status)` if it has exited (and is now reaped).
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Send `sig` to the process (by PID), then wait up to `timeout` for it to
    /// exit. Returns the exit status if it exited.
    pub fn signal_and_wait(&mut self, sig: i32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        unsafe { libc::kill(child.id() as i32, sig) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// TERM, wait `grace`, KILL, reap. Returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_ref()?;
        let st = self.signal_and_wait(libc::SIGTERM, self.grace).or_else(|| {
            eprintln!("harness: {} (pid {}) did not stop on SIGTERM, sending SIGKILL", self.name, self.pid());
            self.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        });
        self.child = None;
        st
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

fn proc_env_has(pid: u32, needle: &[u8]) -> bool {
    match fs::read(format!("/proc/{pid}/environ")) {
        Ok(env) => env.split(|b| *b == 0).any(|kv| kv == needle),
        Err(_) => false,
    }
}

fn proc_env_value(pid: u32, key: &str) -> Option<String> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{key}=");
    env.split(|b| *b == 0)
        .find(|kv| kv.starts_with(prefix.as_bytes()))
        .map(|kv| String::from_utf8_lossy(&kv[prefix.len()..]).into_owned())
}

fn all_pids() -> Vec<u32> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| *p != me)
                .collect()
        })
        .unwrap_or_default()
}

/// Running (not zombie) process?
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Marker put on a bus and everything it activates: the bus's directory.
pub const MARKER_BUS: &str = "IMSYNC_HARNESS_BUS";

/// PIDs of live processes carrying `MARKER_DIR=root`.
pub fn marked_pids(root: &Path) -> Vec<u32> {
    pids_with_env(MARKER_DIR, &root.display().to_string())
}

/// PIDs of live processes whose environment has `key=value`.
pub fn pids_with_env(key: &str, value: &str) -> Vec<u32> {
    let needle = format!("{key}={value}").into_bytes();
    all_pids().into_iter().filter(|p| alive(*p) && proc_env_has(*p, &needle)).collect()
}

/// SIGTERM, then SIGKILL, every process that carries our marker for `root`
/// and wait (a bit) until they are gone. Returns what was found.
pub fn kill_stragglers(root: &Path) -> Vec<u32> {
    kill_with_env(MARKER_DIR, &root.display().to_string())
}

/// Like [`kill_stragglers`], for processes with `key=value` in their environment.
pub fn kill_with_env(key: &str, value: &str) -> Vec<u32> {
    let found = pids_with_env(key, value);
    if found.is_empty() {
        return found;
    }
    // TERM first: lets EDS and SyncEvolution flush their files
    for p in &found {
        unsafe { libc::kill(*p as i32, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && found.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in found.iter().filter(|p| alive(**p)) {
        unsafe { libc::kill(*p as i32, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && found.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    found
}

/// Processes left behind by earlier test processes that died without
/// cleaning up (SIGKILL, abort): their owner PID is gone. Kill them by PID.
pub fn kill_orphans_of_dead_tests() {
    for pid in all_pids() {
        if let Some(owner) = proc_env_value(pid, MARKER_OWNER) {
            let Ok(owner) = owner.parse::<u32>() else { continue };
            if owner != std::process::id() && !alive(owner) && alive(pid) {
                eprintln!("harness: killing orphan {pid} of dead test process {owner}");
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Wait until `f` returns `Some`, polling every `every`, up to `timeout`.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Async version of [`poll`].
pub async fn poll_async<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Last `max` bytes of a log file, for error messages.
pub fn tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let start = b.len().saturating_sub(max);
            format!("--- {} (last {} bytes) ---\n{}", path.display(), b.len() - start, String::from_utf8_lossy(&b[start..]))
        }
        Err(e) => format!("--- {}: {e}", path.display()),
    }
}

/// Find a program by absolute path or on the standard PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Path::new(prog).exists().then(|| PathBuf::from(prog));
    }
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/libexec"]
        .iter()
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.exists())
}
