//! imsyncd: the imsync service. Started by D-Bus activation (or systemd) on the session bus;
//! exits after a while without work.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use imsync::daemon_args::Args;
use imsync::dbus::{self, Shared};
use imsync::engine::{Engine, EngineOptions};
use imsync::profile::{Secrets, Store};

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("imsync");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/imsync")
}

/// glibc malloc settings for a small daemon that is idle most of the time and now and then
/// handles every contact of the phone at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator parameters; called before any thread exists.
    unsafe {
        // One arena: the runtime's threads (the main one, the blocking HTTP posts) share the main
        // heap instead of each growing an arena of its own that keeps its free memory.
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Fixed thresholds: big buffers (a D-Bus reply with every vCard, a message being
        // encoded) are mmap'd and go back to the kernel when freed. glibc's dynamic threshold
        // would raise itself to the largest buffer freed and keep the next ones in the heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// The C `pow`, for the one caller imsyncd has: the poll-time statistics of tokio's
/// multi-thread scheduler, linked in (zbus asks for that scheduler) but never run, as imsyncd
/// runs on the current-thread one. With it defined here the C math library is not loaded:
/// libm.so mapped ~550 KB into every idle daemon (its load-time IFUNC resolvers and symbol
/// tables), for one function. `libm` is the Rust port of musl's, accurate to < 1 ulp.
#[cfg(target_os = "linux")]
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// Give the memory freed by a finished job back to the kernel (glibc keeps freed chunks in
/// the heap: after a backup of 10 000 contacts that is tens of MB until the daemon exits).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    let args = Args::parse();
    imsync::logging::init(args.log_level.as_deref());
    // One thread runs every task: the D-Bus calls, the jobs and the codec (a job's CPU comes
    // in slices of a few ms per SyncML message, so calls stay answered during a backup); the
    // blocking HTTP posts and file work go to the blocking pool. The multi-thread scheduler
    // would add a worker thread and its poll-time statistics, the daemon's only use of libm
    // (pow), which costs ~0.5 MB of mapped pages in an idle daemon.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let state_dir = args.state_dir.unwrap_or_else(default_state_dir);
    let store = Store::open(&state_dir.join("state.db")).map_err(|e| format!("cannot open the state database: {e}"))?;
    let interrupted = store.fail_interrupted_jobs().map_err(|e| e.to_string())?;
    if interrupted > 0 {
        tracing::warn!(jobs = interrupted, "jobs interrupted by the last stop are marked failed");
    }
    let store = Arc::new(Mutex::new(store));
    let secrets = Arc::new(Secrets::new(state_dir.join("secrets")));
    let conn = zbus::Connection::session().await.map_err(|e| format!("cannot connect to the session bus: {e}"))?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::new(Arc::clone(&store), Arc::clone(&secrets), conn.clone(), EngineOptions { state_dir: Some(state_dir.clone()), ..EngineOptions::default() }, tx);
    let shared = Shared::new(Arc::clone(&engine), store, secrets);
    dbus::serve(&conn, Arc::clone(&shared), rx)
        .await
        .map_err(|e| format!("cannot own {} on the session bus: {e}", dbus::BUS_NAME))?;
    tracing::info!(state_dir = %state_dir.display(), idle_timeout = args.idle_timeout, "imsyncd ready");

    let retention = Duration::from_secs(args.job_retention);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut was_running = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let running = engine.running() > 0;
                if was_running && !running {
                    release_free_memory();
                }
                was_running = running;
                dbus::expire_jobs(&conn, &engine, retention).await;
                let idle_for = dbus::now_secs().saturating_sub(shared.last_activity.load(std::sync::atomic::Ordering::SeqCst));
                if args.idle_timeout > 0 && engine.jobs().is_empty() && idle_for >= args.idle_timeout {
                    tracing::info!(idle_for, "idle; exiting");
                    break;
                }
            }
            _ = term.recv() => { shutdown(&engine).await; break; }
            _ = int.recv() => { shutdown(&engine).await; break; }
        }
    }
    Ok(())
}

/// Cancel running jobs and give them a moment to record that (anchors stay untouched).
async fn shutdown(engine: &Engine) {
    tracing::info!(running = engine.running(), "stopping");
    engine.cancel_all();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while engine.running() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A job still waiting on the network is recorded as cancelled; it committed nothing.
    match engine.with_store(|s| s.cancel_running_jobs()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "jobs cancelled by the stop"),
        Err(e) => tracing::error!(error = %e, "cannot record the cancelled jobs"),
    }
}
