//! imsync-bench: speed, memory and wire cost of a backup, and the daemon's footprint.
//!
//! End to end with the real components (the harness of the integration tests): a private
//! D-Bus bus, evolution-data-server seeded with N realistic contacts (vCard 3.0, several
//! TEL/EMAIL, UTF-8 names, no photos), SyncEvolution's SyncML server (session logs off) and
//! the real `imsyncd`. Per N:
//!
//! * `first`: the first backup of a fresh phone (the engine asks for a slow sync, 201);
//! * `nochange`: backups with nothing changed (EDS running; best of `--nochange-runs`);
//! * `change1pct`: a backup after 1 % of the contacts were edited (one-way-from-client);
//!
//! each with wall time (Backup() call to Finished signal), imsyncd's CPU (utime+stime delta
//! of /proc/PID/stat), imsyncd's peak RSS during the backup (clear_refs 5 before, VmHWM
//! after), HTTP round trips and bytes from the job report, the payload (the items as
//! rendered on the wire, computed with the imsync library from what EDS holds), and the
//! CPU of the server's processes and of the phone's other processes (EDS, bus) for context.
//!
//! The footprint part starts a private bus whose servicedir activates `imsyncd
//! --idle-timeout 2`, times GetAccount from a fresh client (cold start: activation + reply),
//! reads the RSS right after and while idle, and checks that the daemon exits when idle; then
//! again with gnome-keyring (unlocked, as after login) as the Secret Service on that bus, as a
//! phone's session has it: the account's password is then looked up through it.
//!
//! Numbers are printed, compared with the targets (PASS/FAIL; `--enforce` makes a FAIL the
//! exit status), and written as JSON (`bench/results/<date>-<commit>.json` by default).
//!
//!     tools/bench                      # release build + --contacts 1000,10000
//!     cargo run --release -p imsync-tests --bin imsync-bench -- --contacts 1000,10000
//!
//! Options: `--contacts N[,N..]`, `--repeat R` (whole scenario R times, best kept),
//! `--nochange-runs K`, `--cold-runs K`, `--no-footprint`, `--json PATH`, `--no-json`,
//! `--smoke` (CI: no targets, debug binaries allowed), `--enforce`, `--keep`,
//! `--profile-cmd CMD` (run around each first backup with `{pid}` = imsyncd's PID, e.g.
//! `perf record -g -p {pid} -o /tmp/imsyncd.perf`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::sync1::{dict_to_json, Report, JOB1_IFACE};
use harness::{process, ContactSpec, TestEnv};
use imsync::class::DataClass;
use imsync::item::{formats_for, Item, WireFormat};
use serde_json::{json, Value};
use zbus::zvariant::OwnedValue;

type Result<T> = harness::Result<T>;

/// The SyncML server's MaxMsgSize (the harness's SyncEvolution peer config, `maxMsgSize`).
const SERVER_MAX_MSG_SIZE: u64 = 150_000;
/// The contact count the per-backup CPU / RSS targets are stated for.
const TARGET_N: usize = 10_000;

// Targets (2-core machine).
const T_FIRST_CPU_S: f64 = 0.35;
const T_FIRST_RSS_KB: u64 = 15 * 1024;
const T_NOCHANGE_CPU_S: f64 = 0.05;
const T_NOCHANGE_WALL_S: f64 = 0.1;
const T_BODY_FACTOR: f64 = 1.1;
const T_IDLE_RSS_KB: u64 = 5 * 1024;
const T_COLD_START_S: f64 = 0.05;

#[derive(Clone, Debug)]
struct Args {
    sizes: Vec<usize>,
    repeat: usize,
    nochange_runs: usize,
    cold_runs: usize,
    footprint: bool,
    json: Option<PathBuf>,
    write_json: bool,
    smoke: bool,
    enforce: bool,
    keep: bool,
    /// Run around each first backup, `{pid}` replaced by imsyncd's PID (e.g. `perf record -g
    /// -p {pid} -o /tmp/imsyncd.perf`); SIGINT when the backup finished.
    profile_cmd: Option<String>,
}

fn usage() -> &'static str {
    "usage: imsync-bench [--contacts N[,N..]] [--repeat R] [--nochange-runs K] [--cold-runs K]\n\
     \x20                   [--no-footprint] [--json PATH | --no-json] [--smoke] [--enforce] [--keep]\n\
     \x20                   [--profile-cmd 'perf record -g -p {pid} -o FILE']"
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        sizes: vec![1000, 10_000],
        repeat: 1,
        nochange_runs: 3,
        cold_runs: 5,
        footprint: true,
        json: None,
        write_json: true,
        smoke: false,
        enforce: false,
        keep: std::env::var("IMSYNC_KEEP_TEST_DIR").is_ok_and(|v| v == "1"),
        profile_cmd: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> std::result::Result<usize, String> {
        v.and_then(|s| s.parse().ok()).ok_or_else(|| format!("{what} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--contacts" => {
                let v = it.next().ok_or("--contacts needs N[,N..]")?;
                a.sizes = v
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<usize>().map_err(|_| format!("bad count {s:?}")))
                    .collect::<std::result::Result<_, _>>()?;
            }
            "--repeat" => a.repeat = num(it.next(), "--repeat")?.max(1),
            "--nochange-runs" => a.nochange_runs = num(it.next(), "--nochange-runs")?.max(1),
            "--cold-runs" => a.cold_runs = num(it.next(), "--cold-runs")?.max(1),
            "--no-footprint" => a.footprint = false,
            "--json" => a.json = Some(PathBuf::from(it.next().ok_or("--json needs a path")?)),
            "--no-json" => a.write_json = false,
            "--smoke" => a.smoke = true,
            "--enforce" => a.enforce = true,
            "--keep" => a.keep = true,
            "--profile-cmd" => a.profile_cmd = Some(it.next().ok_or("--profile-cmd needs a command")?),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("imsync-bench: {e}");
            std::process::exit(2);
        }
    };
    // The product's log level (the harness defaults to debug, which costs CPU per item).
    // Set before any thread exists.
    if std::env::var_os("IMSYNC_TEST_RUST_LOG").is_none() {
        std::env::set_var("IMSYNC_TEST_RUST_LOG", "info");
    }
    std::env::remove_var("IMSYNC_TEST_SERVER_LOGS");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    match rt.block_on(run(&args)) {
        Ok(failed) if failed > 0 && args.enforce => std::process::exit(1),
        Ok(_) => {}
        Err(e) => {
            eprintln!("imsync-bench: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readers

fn clk_tck() -> f64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (utime + stime, cutime + cstime) of `pid` in seconds.
fn proc_cpu(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field k is f[k - 3]
    let n = |k: usize| f.get(k - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64;
    let tck = clk_tck();
    Some(((n(14) + n(15)) / tck, (n(16) + n(17)) / tck))
}

/// A `kB` field of /proc/PID/status (VmRSS, VmHWM, ...).
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

fn threads(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// Reset the peak RSS (VmHWM) of `pid`.
fn clear_refs(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU seconds of a group of processes (own + reaped children), for deltas.
fn group_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| proc_cpu(*p)).map(|(own, children)| own + children).sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// one backup, measured

#[derive(Clone, Debug, Default)]
struct Measure {
    wall_s: f64,
    cpu_s: f64,
    peak_rss_kb: u64,
    rss_after_kb: u64,
    threads: u64,
    messages: u64,
    bytes_sent: u64,
    bytes_received: u64,
    server_cpu_s: f64,
    phone_other_cpu_s: f64,
    state: String,
    mode: String,
    added: u64,
    replaced: u64,
    deleted: u64,
    failed: u64,
    /// The items' own size as sent (the negotiated wire format), bytes.
    payload_bytes: u64,
    payload_items: u64,
}

impl Measure {
    fn to_json(&self) -> Value {
        json!({
            "wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 3), "peak_rss_kb": self.peak_rss_kb,
            "rss_after_kb": self.rss_after_kb, "threads": self.threads, "messages": self.messages,
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
            "server_cpu_s": round(self.server_cpu_s, 3), "phone_other_cpu_s": round(self.phone_other_cpu_s, 3),
            "state": self.state, "mode": self.mode, "added": self.added, "replaced": self.replaced,
            "deleted": self.deleted, "failed": self.failed, "payload_bytes": self.payload_bytes,
            "payload_items": self.payload_items,
        })
    }

    /// Keep the better of two runs, metric by metric (noise only adds).
    fn best(mut self, o: &Measure) -> Measure {
        self.wall_s = self.wall_s.min(o.wall_s);
        self.cpu_s = self.cpu_s.min(o.cpu_s);
        self.peak_rss_kb = self.peak_rss_kb.min(o.peak_rss_kb);
        self.rss_after_kb = self.rss_after_kb.min(o.rss_after_kb);
        self.server_cpu_s = self.server_cpu_s.min(o.server_cpu_s);
        self.phone_other_cpu_s = self.phone_other_cpu_s.min(o.phone_other_cpu_s);
        self
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

struct Rig {
    env: TestEnv,
    sync: harness::Sync1,
    daemon_pid: u32,
}

impl Rig {
    fn server_pids(&self) -> Vec<u32> {
        process::pids_with_env(harness::syncml_server::MARKER_SERVER, &self.env.server().dir().display().to_string())
    }

    fn phone_other_pids(&self) -> Vec<u32> {
        let bus_dir = self.env.phone.bus.dir().display().to_string();
        process::pids_with_env(process::MARKER_BUS, &bus_dir).into_iter().filter(|p| *p != self.daemon_pid).collect()
    }

    /// Backup() → Finished, measured.
    async fn backup(&self) -> Result<Measure> {
        let pid = self.daemon_pid;
        let conn = self.env.phone.connection();
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(JOB1_IFACE)?
            .member("Finished")?
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, conn, Some(64)).await?;
        let server_pids = self.server_pids();
        let phone_pids = self.phone_other_pids();
        // let the previous step's writes (EDS) and exits settle
        tokio::time::sleep(Duration::from_millis(300)).await;
        let srv0 = group_cpu(&server_pids);
        let phone0 = group_cpu(&phone_pids);
        if !clear_refs(pid) {
            eprintln!("imsync-bench: cannot reset the peak RSS of {pid} (/proc/{pid}/clear_refs)");
        }
        let (cpu0, _) = proc_cpu(pid).ok_or("imsyncd is gone")?;
        let t0 = Instant::now();
        let job = self.sync.backup().await?;
        let (state, report) = harness::timeout(Duration::from_secs(1800), async {
            while let Some(Ok(msg)) = signals.next().await {
                if msg.header().path().map(|p| p.as_str()) != Some(job.as_str()) {
                    continue;
                }
                let (state, report): (String, HashMap<String, OwnedValue>) = msg.body().deserialize()?;
                return Ok::<_, harness::Error>((state, dict_to_json(&report)));
            }
            Err("signal stream ended".into())
        })
        .await??;
        let wall = t0.elapsed().as_secs_f64();
        // what the daemon does right after Finished (history, properties) belongs to the backup
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (cpu1, _) = proc_cpu(pid).ok_or("imsyncd is gone")?;
        let peak = status_kb(pid, "VmHWM").unwrap_or(0);
        let rss = status_kb(pid, "VmRSS").unwrap_or(0);
        // server helpers may still be finishing the session
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut all_srv = server_pids.clone();
        all_srv.extend(self.server_pids().into_iter().filter(|p| !server_pids.contains(p)));
        let srv1 = group_cpu(&all_srv);
        let phone1 = group_cpu(&phone_pids);
        let u = |k: &str| report.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let rep = Report::from_json(report.clone());
        let c = rep.classes.get("contacts").cloned().unwrap_or_default();
        Ok(Measure {
            wall_s: wall,
            cpu_s: cpu1 - cpu0,
            peak_rss_kb: peak,
            rss_after_kb: rss,
            threads: threads(pid).unwrap_or(0),
            messages: u("messages"),
            bytes_sent: u("bytes_sent"),
            bytes_received: u("bytes_received"),
            server_cpu_s: (srv1 - srv0).max(0.0),
            phone_other_cpu_s: (phone1 - phone0).max(0.0),
            state,
            mode: c.mode,
            added: c.added,
            replaced: c.replaced,
            deleted: c.deleted,
            failed: c.failed,
            payload_bytes: 0,
            payload_items: 0,
        })
    }

    /// The format the engine sent contacts in (its log line "server agreed"), else the
    /// canonical one.
    fn negotiated_format(&self) -> WireFormat {
        let log = self.env.phone.daemon.logs();
        let canonical = formats_for(DataClass::Contacts)[0];
        let Some(line) = log.lines().rev().find(|l| l.contains("server agreed") && l.contains("class=contacts")) else {
            return canonical;
        };
        formats_for(DataClass::Contacts)
            .iter()
            .copied()
            .find(|f| {
                line.contains(&format!("format={} ", f.mime())) || line.ends_with(&format!("format={}", f.mime()))
            })
            .unwrap_or(canonical)
    }

    /// Size of the given EDS vCards as the engine renders them in `format`.
    fn rendered_size(vcards: &[String], format: WireFormat) -> u64 {
        vcards
            .iter()
            .map(|v| match Item::from_wire(v.as_bytes(), WireFormat::VCard30) {
                Ok(item) => item.to_wire(format).len() as u64,
                Err(_) => v.len() as u64,
            })
            .sum()
    }
}

/// Realistic contacts for the benchmark: the harness's generator (7 scripts, typed TEL and
/// EMAIL, ADR, NOTE, ORG, CATEGORIES, BDAY) without photos.
fn bench_contacts(env: &TestEnv, n: usize) -> Vec<ContactSpec> {
    let mut v = env.contacts(n);
    for s in v.iter_mut() {
        s.photo = None;
    }
    v
}

#[derive(Clone, Debug, Default)]
struct SizeResult {
    n: usize,
    avg_vcard_bytes: f64,
    seed_s: f64,
    first: Measure,
    nochange: Measure,
    nochange_runs: Vec<Measure>,
    change: Measure,
    idle_rss_after_kb: u64,
    format: String,
}

async fn run_size(n: usize, args: &Args) -> Result<SizeResult> {
    let name = format!("bench-{n}");
    let server_opts = harness::syncml_server::ServerOptions { session_logs: false, ..Default::default() };
    let mut env = TestEnv::with_server_options(&name, harness::EnvOptions::default(), server_opts).await?;
    if args.keep {
        env.keep_dir();
    }
    let daemon_pid = env.phone.daemon.pid().ok_or("imsyncd not running")?;
    let specs = bench_contacts(&env, n);
    let avg = specs.iter().map(|s| s.to_vcard(None).len()).sum::<usize>() as f64 / n.max(1) as f64;
    let t = Instant::now();
    let uids = env.phone.seed(&specs).await?;
    let seed_s = t.elapsed().as_secs_f64();
    println!("  N={n}: seeded {n} contacts into EDS in {seed_s:.1}s (average {avg:.0} bytes per vCard as written)");
    let sync = env.phone.sync1().await?;
    // the product's default mode (one-way-from-client), not the tests' two-way
    let mut account = env.account();
    account.remove("contacts.mode");
    sync.set_account(&account).await?;
    let rig = Rig { env, sync, daemon_pid };

    // first backup
    let profiler = match &args.profile_cmd {
        Some(cmd) => {
            let cmd = cmd.replace("{pid}", &daemon_pid.to_string());
            println!("  N={n}: profiling the first backup: {cmd}");
            let child = std::process::Command::new("sh").arg("-c").arg(format!("exec {cmd}")).spawn()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some(child)
        }
        None => None,
    };
    let mut first = rig.backup().await?;
    if let Some(mut child) = profiler {
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let _ = child.wait();
    }
    let format = rig.negotiated_format();
    let all = rig.env.phone.book().list().await?;
    first.payload_bytes = Rig::rendered_size(&all, format);
    first.payload_items = all.len() as u64;
    drop(all);
    println!("  N={n}: first backup      {}", line(&first));
    let on_server = rig.env.server().item_count("contacts");
    if on_server != n {
        eprintln!("imsync-bench: WARNING: the server holds {on_server} contacts after the first backup, expected {n}");
    }

    // no-change backups
    let mut runs = Vec::new();
    for _ in 0..args.nochange_runs {
        let m = rig.backup().await?;
        println!("  N={n}: no-change backup  {}", line(&m));
        runs.push(m);
    }
    let nochange = runs.iter().skip(1).fold(runs[0].clone(), |acc, m| acc.best(m));

    // 1 % changed
    let k = (n / 100).max(1);
    let mut changed_uids = Vec::new();
    let mut vcards = Vec::new();
    for i in (0..n).step_by((n / k).max(1)).take(k) {
        let mut s = specs[i].clone();
        s.edit("bench");
        vcards.push(s.to_vcard(Some(&uids[i])));
        changed_uids.push(uids[i].clone());
    }
    rig.env.phone.book().modify_contacts(&vcards).await?;
    let mut change = rig.backup().await?;
    let mut now = Vec::new();
    for u in &changed_uids {
        now.push(rig.env.phone.book().get(u).await?);
    }
    change.payload_bytes = Rig::rendered_size(&now, format);
    change.payload_items = now.len() as u64;
    println!("  N={n}: 1% changed        {}", line(&change));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_after_kb = status_kb(daemon_pid, "VmRSS").unwrap_or(0);
    Ok(SizeResult {
        n,
        avg_vcard_bytes: avg,
        seed_s,
        first,
        nochange,
        nochange_runs: runs,
        change,
        idle_rss_after_kb,
        format: format!("{} {}", format.mime(), format.version()),
    })
}

fn line(m: &Measure) -> String {
    format!(
        "{:>8.3}s wall {:>7.3}s cpu {:>7.1} MB peak RSS {:>3} round trips {:>9} B sent {:>8} B received; server cpu {:.2}s; {} {} (+{} ~{} -{} !{})",
        m.wall_s,
        m.cpu_s,
        m.peak_rss_kb as f64 / 1024.0,
        m.messages,
        m.bytes_sent,
        m.bytes_received,
        m.server_cpu_s,
        m.state,
        m.mode,
        m.added,
        m.replaced,
        m.deleted,
        m.failed
    )
}

// ---------------------------------------------------------------------------------------------
// footprint: D-Bus activation, idle RSS, idle exit

#[derive(Clone, Debug, Default)]
struct Footprint {
    cold_start_s: Vec<f64>,
    rss_after_activation_kb: Vec<u64>,
    rss_idle_kb: Vec<u64>,
    /// (RssAnon, RssFile) of the last idle measurement
    rss_idle_split_kb: (u64, u64),
    threads_idle: u64,
    exit_after_s: Vec<f64>,
    exited: bool,
}

const IDLE_TIMEOUT: u64 = 2;

impl Footprint {
    fn to_json(&self) -> Value {
        json!({
            "idle_timeout_s": IDLE_TIMEOUT,
            "cold_start_s": self.cold_start_s.iter().map(|v| round(*v, 4)).collect::<Vec<_>>(),
            "rss_after_activation_kb": self.rss_after_activation_kb,
            "rss_idle_kb": self.rss_idle_kb,
            "threads_idle": self.threads_idle,
            "rss_idle_anon_kb": self.rss_idle_split_kb.0,
            "rss_idle_file_kb": self.rss_idle_split_kb.1,
            "exit_after_s": self.exit_after_s.iter().map(|v| round(*v, 2)).collect::<Vec<_>>(),
            "exited": self.exited,
        })
    }
}

/// The footprint on a bus of its own; with `keyring`, gnome-keyring is the Secret Service there.
async fn run_footprint(args: &Args, imsyncd: &Path, keyring: bool) -> Result<Footprint> {
    process::kill_orphans_of_dead_tests();
    let dir = tempfile::Builder::new().prefix("imb-").tempdir_in("/tmp")?;
    let root = dir.path().canonicalize()?;
    let bus_dir = root.join("b");
    std::fs::create_dir_all(bus_dir.join("services"))?;
    std::fs::write(
        bus_dir.join("services/org.imsync.Sync1.service"),
        format!("[D-BUS Service]\nName=org.imsync.Sync1\nExec={} --idle-timeout {IDLE_TIMEOUT}\n", imsyncd.display()),
    )?;
    let opts = harness::bus::BusOptions { activatable: vec![], env: vec![("RUST_LOG".into(), "info".into())] };
    let mut bus = harness::Bus::start(&root, &bus_dir, &opts)?;
    let mut secrets = if keyring { Some(harness::keyring::Keyring::start(&root, &bus)?) } else { None };
    let res = footprint_runs(args, &bus).await;
    if let Some(k) = secrets.as_mut() {
        k.stop();
    }
    bus.stop();
    process::kill_stragglers(&root);
    if args.keep {
        let p = dir.keep();
        println!("  footprint dir kept: {}", p.display());
    }
    res
}

async fn footprint_runs(args: &Args, bus: &harness::Bus) -> Result<Footprint> {
    let mut fp = Footprint { exited: true, ..Default::default() };
    let watcher = bus.connect().await?;
    for i in 0..args.cold_runs + 1 {
        // a fresh client
        let conn = bus.connect().await?;
        let t0 = Instant::now();
        let reply = conn
            .call_method(
                Some(harness::daemon::SYNC1_NAME),
                harness::daemon::SYNC1_PATH,
                Some("org.imsync.Sync1"),
                "GetAccount",
                &(),
            )
            .await;
        let dt = t0.elapsed().as_secs_f64();
        let pid = harness::bus::name_owner_pid(&watcher, harness::daemon::SYNC1_NAME)
            .await?
            .ok_or("imsyncd not on the bus after activation")?;
        let rss0 = status_kb(pid, "VmRSS").unwrap_or(0);
        if i == 0 {
            // first activation: give the daemon an account (the later cold starts read it);
            // the first run also warms the page cache and is not counted
            if reply.is_err() {
                let settings: HashMap<&str, zbus::zvariant::Value> = [
                    ("protocol", "xmpp".into()),
                    ("im_id", "bench@example.org".into()),
                    ("server_url", "http://127.0.0.1:9/syncml".into()),
                    ("username", "bench".into()),
                    ("password", "bench-password".into()),
                ]
                .into_iter()
                .collect();
                conn.call_method(
                    Some(harness::daemon::SYNC1_NAME),
                    harness::daemon::SYNC1_PATH,
                    Some("org.imsync.Sync1"),
                    "SetAccount",
                    &(settings,),
                )
                .await?;
            }
        } else {
            if let Err(e) = &reply {
                eprintln!("imsync-bench: GetAccount failed: {e}");
            }
            fp.cold_start_s.push(dt);
            fp.rss_after_activation_kb.push(rss0);
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        if i > 0 {
            fp.rss_idle_kb.push(status_kb(pid, "VmRSS").unwrap_or(0));
            fp.threads_idle = threads(pid).unwrap_or(0);
            fp.rss_idle_split_kb = (status_kb(pid, "RssAnon").unwrap_or(0), status_kb(pid, "RssFile").unwrap_or(0));
        }
        drop(conn);
        // the last call was 1.2 s ago: it must exit within the idle timeout (+ its 1 s tick)
        let t_exit = Instant::now();
        let gone = process::poll_async(Duration::from_secs(15), Duration::from_millis(20), || async {
            (!process::alive(pid)).then_some(())
        })
        .await;
        match gone {
            Some(()) => fp.exit_after_s.push(t_exit.elapsed().as_secs_f64() + 1.2),
            None => {
                fp.exited = false;
                return Err(format!(
                    "imsyncd (pid {pid}) did not exit within 15 s of idleness (--idle-timeout {IDLE_TIMEOUT})"
                )
                .into());
            }
        }
        // wait until the bus saw the name go
        let _ = process::poll_async(Duration::from_secs(5), Duration::from_millis(10), || async {
            harness::bus::name_has_owner(&watcher, harness::daemon::SYNC1_NAME).await.ok().filter(|o| !*o).map(|_| ())
        })
        .await;
    }
    Ok(fp)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        0.0
    } else {
        s[s.len() / 2]
    }
}

fn min_f(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn min_u(v: &[u64]) -> u64 {
    v.iter().copied().min().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// targets, table, JSON

struct Check {
    what: String,
    value: String,
    target: String,
    pass: bool,
}

fn checks(sizes: &[SizeResult], fp: Option<&Footprint>, fp_keyring: Option<&Footprint>) -> Vec<Check> {
    let mut out = Vec::new();
    let mut c = |what: String, value: String, target: String, pass: bool| out.push(Check { what, value, target, pass });
    for r in sizes {
        let n = r.n;
        if n == TARGET_N {
            c(
                format!("N={n} first backup: imsyncd CPU"),
                format!("{:.3} s", r.first.cpu_s),
                format!("≤ {T_FIRST_CPU_S} s"),
                r.first.cpu_s <= T_FIRST_CPU_S,
            );
            c(
                format!("N={n} first backup: imsyncd peak RSS"),
                format!("{:.1} MB", r.first.peak_rss_kb as f64 / 1024.0),
                format!("≤ {} MB", T_FIRST_RSS_KB / 1024),
                r.first.peak_rss_kb <= T_FIRST_RSS_KB,
            );
        }
        c(
            format!("N={n} no-change backup: imsyncd CPU"),
            format!("{:.3} s", r.nochange.cpu_s),
            format!("≤ {T_NOCHANGE_CPU_S} s"),
            r.nochange.cpu_s <= T_NOCHANGE_CPU_S,
        );
        c(
            format!("N={n} no-change backup: wall"),
            format!("{:.3} s", r.nochange.wall_s),
            format!("≤ {T_NOCHANGE_WALL_S} s"),
            r.nochange.wall_s <= T_NOCHANGE_WALL_S,
        );
        for (label, m) in [("first backup", &r.first), ("1% changed", &r.change), ("no-change backup", &r.nochange)] {
            let limit = m.payload_bytes.div_ceil(SERVER_MAX_MSG_SIZE) + 2;
            let limit = if m.payload_bytes == 0 { 0 } else { limit };
            c(
                format!("N={n} {label}: round trips"),
                format!("{}", m.messages),
                format!("≤ {limit} (payload {} B ÷ MaxMsgSize {SERVER_MAX_MSG_SIZE} + 2)", m.payload_bytes),
                m.messages <= limit,
            );
            if m.payload_bytes > 0 {
                let ratio = m.bytes_sent as f64 / m.payload_bytes as f64;
                c(
                    format!("N={n} {label}: request bytes / payload"),
                    format!("{ratio:.3} ({} / {})", m.bytes_sent, m.payload_bytes),
                    format!("≤ {T_BODY_FACTOR}"),
                    ratio <= T_BODY_FACTOR,
                );
            }
        }
    }
    for (what, f) in [("idle RSS (after activation)", fp), ("idle RSS with gnome-keyring as Secret Service", fp_keyring)] {
        if let Some(f) = f {
            let idle = min_u(&f.rss_idle_kb);
            c(what.into(), format!("{:.1} MB", idle as f64 / 1024.0), format!("≤ {} MB", T_IDLE_RSS_KB / 1024), idle <= T_IDLE_RSS_KB);
        }
    }
    if let Some(fp) = fp {
        let cold = median(&fp.cold_start_s);
        c(
            "cold start to first reply (median)".into(),
            format!("{:.1} ms", cold * 1000.0),
            format!("≤ {} ms", T_COLD_START_S * 1000.0),
            cold <= T_COLD_START_S,
        );
        let exit = fp.exit_after_s.iter().copied().fold(0.0, f64::max);
        c(
            "exits after the idle timeout".into(),
            format!("{} (≤ {exit:.1} s after the last call)", if fp.exited { "yes" } else { "no" }),
            format!("--idle-timeout {IDLE_TIMEOUT}: exits within {} s", IDLE_TIMEOUT + 2),
            fp.exited && exit <= (IDLE_TIMEOUT + 2) as f64 + 0.5,
        );
    }
    out
}

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    json!({
        "cpu": model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_total": mem,
        "kernel": sh("uname", &["-r"]),
        "os": std::fs::read_to_string("/etc/os-release").unwrap_or_default().lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())).unwrap_or_default(),
    })
}

fn row(n: usize, label: &str, m: &Measure) -> String {
    format!(
        "| {n} | {label} | {} | {:.3} | {:.3} | {:.1} | {} | {} | {} | {} | {:.2} |",
        m.mode,
        m.wall_s,
        m.cpu_s,
        m.peak_rss_kb as f64 / 1024.0,
        m.messages,
        m.bytes_sent,
        m.bytes_received,
        m.payload_bytes,
        m.server_cpu_s
    )
}

async fn run(args: &Args) -> Result<usize> {
    let imsyncd = harness::daemon::workspace_binary("imsyncd")?;
    let release = imsyncd.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "release");
    if !release && !args.smoke {
        return Err(format!(
            "{} is not a release build: run tools/bench, or build with `cargo build --release -p imsync --bins` and run \
             this binary from target/release (IMSYNC_BIN_DIR=release picks target/release); --smoke allows it",
            imsyncd.display()
        )
        .into());
    }
    let commit = sh("git", &["rev-parse", "--short=10", "HEAD"]);
    let dirty = !sh(
        "git",
        &["status", "--porcelain", "--untracked-files=no", "--", "service", "syncml", "tests", "Cargo.lock"],
    )
    .is_empty();
    let date = sh("date", &["-u", "+%Y-%m-%d"]);
    let started = sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    let load_start = loadavg();
    println!(
        "imsync-bench: imsyncd {} ({}), commit {commit}{}, load {load_start}",
        imsyncd.display(),
        if release { "release" } else { "DEBUG build" },
        if dirty { " (+ local changes)" } else { "" }
    );

    let mut sizes = Vec::new();
    for &n in &args.sizes {
        let mut best: Option<SizeResult> = None;
        for r in 0..args.repeat {
            println!("N={n}: run {}/{}", r + 1, args.repeat);
            let res = run_size(n, args).await?;
            best = Some(match best {
                None => res,
                Some(mut b) => {
                    b.first = b.first.best(&res.first);
                    b.nochange = b.nochange.best(&res.nochange);
                    b.change = b.change.best(&res.change);
                    b.nochange_runs.extend(res.nochange_runs);
                    b.idle_rss_after_kb = b.idle_rss_after_kb.min(res.idle_rss_after_kb);
                    b
                }
            });
        }
        sizes.push(best.expect("one run"));
    }

    let mut fp = None;
    let mut fp_keyring = None;
    if args.footprint {
        let with_keyring = process::which("gnome-keyring-daemon").is_some();
        if !with_keyring {
            println!("footprint: gnome-keyring-daemon not installed: no footprint with a Secret Service");
        }
        for keyring in [false, true].into_iter().filter(|k| !k || with_keyring) {
            println!(
                "footprint{}: D-Bus activation of imsyncd --idle-timeout {IDLE_TIMEOUT}, {} cold starts",
                if keyring { " with gnome-keyring" } else { "" },
                args.cold_runs
            );
            let f = run_footprint(args, &imsyncd, keyring).await?;
            println!(
                "  cold start to first reply: {} ms; RSS after activation {} kB, idle {} kB; exit after {} s",
                f.cold_start_s.iter().map(|s| format!("{:.1}", s * 1000.0)).collect::<Vec<_>>().join(", "),
                f.rss_after_activation_kb.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
                f.rss_idle_kb.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
                f.exit_after_s.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(", ")
            );
            *(if keyring { &mut fp_keyring } else { &mut fp }) = Some(f);
        }
    }
    let load_end = loadavg();

    // table
    println!();
    println!("machine: {}", machine());
    println!(
        "date: {started}; commit {commit}{}; load average at start {load_start}, at end {load_end}",
        if dirty { " (+ local changes)" } else { "" }
    );
    println!("command: {cmdline}");
    println!();
    println!("| N | backup | mode | wall s | imsyncd CPU s | peak RSS MB | round trips | bytes sent | bytes received | payload bytes | server CPU s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &sizes {
        println!("{}", row(r.n, "first", &r.first));
        println!("{}", row(r.n, &format!("no change (best of {})", r.nochange_runs.len()), &r.nochange));
        println!("{}", row(r.n, "1% changed", &r.change));
    }
    if let Some(fp) = &fp {
        println!();
        println!("| daemon footprint | value |");
        println!("|---|---|");
        println!(
            "| cold start, GetAccount call → reply (D-Bus activation), median / best of {} | {:.1} / {:.1} ms |",
            fp.cold_start_s.len(),
            median(&fp.cold_start_s) * 1000.0,
            min_f(&fp.cold_start_s) * 1000.0
        );
        println!("| RSS right after activation | {:.1} MB |", min_u(&fp.rss_after_activation_kb) as f64 / 1024.0);
        println!(
            "| RSS idle (1.2 s after the call) | {:.1} MB (anonymous {:.1} MB, file-backed {:.1} MB; {} threads) |",
            min_u(&fp.rss_idle_kb) as f64 / 1024.0,
            fp.rss_idle_split_kb.0 as f64 / 1024.0,
            fp.rss_idle_split_kb.1 as f64 / 1024.0,
            fp.threads_idle
        );
        if let Some(fk) = &fp_keyring {
            println!(
                "| RSS idle with gnome-keyring (unlocked) as Secret Service | {:.1} MB (anonymous {:.1} MB, file-backed {:.1} MB; cold start {:.1} ms) |",
                min_u(&fk.rss_idle_kb) as f64 / 1024.0,
                fk.rss_idle_split_kb.0 as f64 / 1024.0,
                fk.rss_idle_split_kb.1 as f64 / 1024.0,
                median(&fk.cold_start_s) * 1000.0
            );
        }
        for r in &sizes {
            println!("| RSS idle after the N={} backups | {:.1} MB |", r.n, r.idle_rss_after_kb as f64 / 1024.0);
        }
        println!(
            "| exits after --idle-timeout {IDLE_TIMEOUT} | {} (≤ {:.1} s after the last call) |",
            if fp.exited { "yes" } else { "no" },
            fp.exit_after_s.iter().copied().fold(0.0, f64::max)
        );
    }
    println!();
    let checks = if args.smoke { Vec::new() } else { checks(&sizes, fp.as_ref(), fp_keyring.as_ref()) };
    let failed = checks.iter().filter(|c| !c.pass).count();
    if args.smoke {
        println!("(smoke run: targets not checked)");
    } else {
        for c in &checks {
            println!("{} {}: {} (target {})", if c.pass { "PASS" } else { "FAIL" }, c.what, c.value, c.target);
        }
        println!("{} passed, {} failed (targets)", checks.len() - failed, failed);
    }

    // JSON
    let doc = json!({
        "schema": 1,
        "date": started,
        "commit": commit,
        "dirty": dirty,
        "command": cmdline,
        "imsyncd": imsyncd.display().to_string(),
        "release": release,
        "machine": machine(),
        "load_start": load_start,
        "load_end": load_end,
        "server_max_msg_size": SERVER_MAX_MSG_SIZE,
        "sizes": sizes.iter().map(|r| json!({
            "n": r.n,
            "avg_vcard_bytes": round(r.avg_vcard_bytes, 1),
            "seed_s": round(r.seed_s, 2),
            "format": r.format,
            "first": r.first.to_json(),
            "nochange": r.nochange.to_json(),
            "nochange_runs": r.nochange_runs.iter().map(|m| m.to_json()).collect::<Vec<_>>(),
            "change_1pct": r.change.to_json(),
            "idle_rss_after_kb": r.idle_rss_after_kb,
        })).collect::<Vec<_>>(),
        "footprint": fp.as_ref().map(Footprint::to_json),
        "footprint_keyring": fp_keyring.as_ref().map(Footprint::to_json),
        "checks": checks.iter().map(|c| json!({"what": c.what, "value": c.value, "target": c.target, "pass": c.pass})).collect::<Vec<_>>(),
    });
    if args.write_json {
        let path = match &args.json {
            Some(p) => p.clone(),
            None => Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/results"))
                .join(format!("{date}-{commit}{}.json", if dirty { "-dirty" } else { "" })),
        };
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
        println!("results: {}", path.display());
    }
    Ok(failed)
}
