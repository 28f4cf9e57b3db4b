//! imsync demo: a sandboxed phone and a SyncML server on this machine.
//!
//! Starts a private D-Bus bus with the real evolution-data-server seeded
//! with realistic contacts, SyncEvolution's SyncML server on 127.0.0.1, and
//! the real `imsyncd`; registers an account over D-Bus, calls `Backup()`,
//! prints the job's Progress / Finished signals and what arrived on the
//! server.
//!
//!     cargo run -p imsync-tests --bin imsync-demo [-- --contacts N] [--keep]
//!
//! `--keep` (or IMSYNC_KEEP_TEST_DIR=1) keeps the sandbox directory with all
//! logs and the server's files.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::modem::rig::ModemRig;
use harness::sync1::{b, dict_to_json, JOB1_IFACE};
use harness::{vcard, EnvOptions, PhoneOptions, TestEnv};
use zbus::zvariant::OwnedValue;

type Result<T> = harness::Result<T>;

fn step(t0: Instant, msg: &str) {
    println!("[{:6.2}s] {msg}", t0.elapsed().as_secs_f64());
}

/// Build imsyncd next to this binary (`cargo run` only builds the demo).
fn ensure_daemon_built() -> Result<()> {
    if std::env::var_os("IMSYNC_BIN_DIR").is_some() {
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", "imsync", "--bin", "imsyncd", "--bin", "imsync"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    println!("building imsyncd (cargo build -p imsync) ...");
    match cmd.status() {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(format!("cargo build -p imsync failed ({st})").into()),
        Err(e) => {
            // no cargo around: use whatever is there (workspace_binary explains if missing)
            eprintln!("cannot run cargo ({e}); using the existing imsyncd");
            Ok(())
        }
    }
}

fn main() {
    let mut count = 50usize;
    let mut keep = std::env::var("IMSYNC_KEEP_TEST_DIR").is_ok_and(|v| v == "1");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--contacts" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => count = n,
                None => fail("--contacts needs a number".into()),
            },
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("usage: imsync-demo [--contacts N] [--keep]");
                return;
            }
            other => fail(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(count, keep)) {
        fail(e);
    }
}

fn fail(e: harness::Error) -> ! {
    eprintln!("imsync-demo: {e}");
    std::process::exit(1);
}

async fn run(count: usize, keep: bool) -> Result<()> {
    ensure_daemon_built()?;
    harness::daemon::workspace_binary("imsyncd")?;

    let t0 = Instant::now();
    step(t0, "starting a private D-Bus bus with evolution-data-server, gnome-keyring, ModemManager with a fake modem, imsyncd, and a SyncML server ...");
    let opts = EnvOptions { phone: PhoneOptions { start_daemon: false, ..Default::default() }, ..Default::default() };
    let mut env = TestEnv::with_options("demo", opts).await?;
    if keep {
        env.keep_dir();
    }
    // the real ModemManager, with a fake AT modem holding 9 SMS (its own bus stands in for the
    // phone's system bus), then imsyncd
    let mut rig = ModemRig::start(env.root(), &env.root().join("modem"), 9).await?;
    step(t0, &format!("ModemManager up with a fake modem holding {} SMS", rig.stored().len()));
    env.phone.daemon.set_env("DBUS_SYSTEM_BUS_ADDRESS", rig.bus_address());
    env.phone.daemon.start().await?;
    let srv = env.server();
    step(t0, &format!("sandbox: {}", env.root().display()));
    step(t0, &format!("phone bus: {}", env.phone.bus.address()));
    step(t0, &format!("EDS up, system-address-book opened in {:.2}s", env.phone.eds_startup.as_secs_f64()));
    step(t0, &format!("SyncML server (SyncEvolution): {} user {:?} (up in {:.2}s)", srv.url(), srv.username(), srv.startup_time().as_secs_f64()));
    step(t0, &format!("imsyncd pid {:?}, log {}", env.phone.daemon.pid(), env.phone.daemon.log_path().map(|p| p.display().to_string()).unwrap_or_default()));

    let specs = env.contacts(count);
    env.phone.seed(&specs).await?;
    step(t0, &format!("seeded {} contacts into EDS ({} with photos), e.g.:", specs.len(), specs.iter().filter(|s| s.photo.is_some()).count()));
    for s in specs.iter().take(3) {
        println!("           {}", vcard::summary(&s.contact()));
    }

    let sync = env.phone.sync1().await?;
    let mut account = env.account();
    account.insert("sms.enabled".into(), b(true));
    sync.set_account(&account).await?;
    step(t0, "SetAccount done; GetAccount (never returns the password):");
    println!("{:#}", sync.get_account_json().await?);

    // subscribe before Backup() so no signal is missed
    let rule = zbus::MatchRule::builder().msg_type(zbus::message::Type::Signal).interface(JOB1_IFACE)?.build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, env.phone.connection(), Some(256)).await?;
    let job = sync.backup().await?;
    step(t0, &format!("Backup() -> {}", job.as_str()));
    let finished = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(Ok(msg)) = signals.next().await {
            let h = msg.header();
            if h.path().map(|p| p.as_str()) != Some(job.as_str()) {
                continue;
            }
            match h.member().map(|m| m.as_str()) {
                Some("Progress") => {
                    if let Ok((class, done, total)) = msg.body().deserialize::<(String, u32, u32)>() {
                        step(t0, &format!("Progress {class}: {done}/{total}"));
                    }
                }
                Some("Finished") => {
                    let (state, report): (String, HashMap<String, OwnedValue>) = msg.body().deserialize()?;
                    return Ok::<_, harness::Error>((state, dict_to_json(&report)));
                }
                _ => {}
            }
        }
        Err("signal stream ended".into())
    })
    .await;
    let (state, report) = match finished {
        Ok(r) => r?,
        Err(_) => return Err("no Finished signal within 10 minutes".into()),
    };
    step(t0, &format!("Finished: state {state:?}; report:"));
    println!("{report:#}");

    let items = srv.items("contacts");
    step(t0, &format!("the server's contacts database now holds {} items ({}); two of them:", items.len(), srv.db_dir("contacts").display()));
    for (name, bytes) in items.iter().take(2) {
        println!("----- {name}");
        let text = vcard::unfold(&String::from_utf8_lossy(bytes));
        // leave out the empty properties the server adds (`ROLE:`, `ADR:;;;;;;`)
        let empty = |l: &str| l.split_once(':').is_some_and(|(_, v)| v.chars().all(|c| c == ';'));
        for line in text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !empty(l)) {
            if line.len() > 110 {
                println!("{}…", line.chars().take(100).collect::<String>());
            } else {
                println!("{line}");
            }
        }
    }
    let sms = srv.items("sms");
    step(t0, &format!("the server's sms database holds {} vMessages; one of them:", sms.len()));
    if let Some((name, bytes)) = sms.first() {
        println!("----- {name}");
        print!("{}", String::from_utf8_lossy(bytes).replace('\r', ""));
    }
    let problems = env.server_contact_problems(&specs, true);
    if problems.is_empty() {
        step(t0, &format!("all {} contacts arrived, equal field by field (N, FN, TEL, EMAIL, ADR, NOTE, ORG, CATEGORIES, BDAY, PHOTO)", specs.len()));
    } else {
        step(t0, &format!("{} differences between EDS and the server, e.g.:", problems.len()));
        for p in problems.iter().take(10) {
            println!("           {p}");
        }
    }
    if keep {
        step(t0, &format!("sandbox kept: {}", env.root().display()));
    }
    step(t0, "stopping everything");
    rig.stop();
    Ok(())
}
