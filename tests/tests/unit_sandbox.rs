//! The hardened user unit must not break what the daemon really does. imsyncd runs a backup
//! (contacts with photos, which EDS keeps as files) under `strace`; every path it writes must be
//! writable under `systemd/imsyncd.service` (ReadWritePaths, PrivateTmp, /dev), every socket
//! family it opens must be in RestrictAddressFamilies, and every system call it makes must pass
//! its SystemCallFilter (checked with `systemd-analyze syscall-filter` where systemd's tools are
//! installed, as in CI).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{EnvOptions, PhoneOptions, TestEnv};

/// The unit's settings we check against, read from the file.
struct Unit {
    read_write: Vec<String>,
    private_tmp: bool,
    families: BTreeSet<String>,
    filters: Vec<String>,
}

fn unit() -> Unit {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/imsyncd.service")).unwrap();
    let mut u = Unit { read_write: vec![], private_tmp: false, families: BTreeSet::new(), filters: vec![] };
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((k, v)) = line.split_once('=') else { continue };
        match k {
            "ReadWritePaths" => u.read_write.extend(v.split_whitespace().map(|p| p.trim_start_matches('-').to_string())),
            "PrivateTmp" => u.private_tmp = v == "yes",
            "RestrictAddressFamilies" => u.families.extend(v.split_whitespace().map(str::to_string)),
            "SystemCallFilter" => u.filters.push(v.to_string()),
            "ProtectSystem" => assert_eq!(v, "strict", "the check assumes ProtectSystem=strict"),
            "ProtectHome" => assert_eq!(v, "read-only", "the check assumes ProtectHome=read-only"),
            _ => {}
        }
    }
    u
}

/// Writable under the unit: ReadWritePaths (with %h = HOME), private /tmp and /var/tmp, /dev.
fn writable(u: &Unit, home: &Path, path: &str) -> bool {
    let p = Path::new(path);
    u.read_write.iter().any(|rw| p.starts_with(rw.replace("%h", &home.to_string_lossy())))
        || (u.private_tmp && (p.starts_with("/tmp") || p.starts_with("/var/tmp")))
        || p.starts_with("/dev/")
        || p.starts_with("/proc/self/")
}

/// The system calls named by a SystemCallFilter entry (`@group` or a name), via systemd-analyze.
fn syscalls_of(spec: &str) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for item in spec.split_whitespace() {
        if let Some(group) = item.strip_prefix('@') {
            let o = Command::new("systemd-analyze").args(["syscall-filter", &format!("@{group}")]).output().ok()?;
            if !o.status.success() {
                return None;
            }
            // "@group" on the first line, then the members indented (names, "@sub" groups, comments)
            for l in String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with(' ')).map(str::trim) {
                if l.is_empty() || l.starts_with('#') || l.contains(' ') {
                    continue;
                }
                match l.strip_prefix('@') {
                    Some(sub) => out.extend(syscalls_of(&format!("@{sub}"))?),
                    None => {
                        out.insert(l.to_string());
                    }
                }
            }
        } else {
            out.insert(item.to_string());
        }
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hardened_unit_allows_everything_a_backup_does() {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "strace is missing (tools/install-deps installs it)");
        eprintln!("SKIP: strace is not installed");
        return;
    }
    let opts = EnvOptions { phone: PhoneOptions { keyring: false, start_daemon: false }, server: true };
    let env = TestEnv::with_options("unit-sandbox", opts).await.unwrap();
    let specs = env.contacts(20);
    assert!(specs.iter().any(|s| s.photo.is_some()));
    env.phone.seed(&specs).await.unwrap();

    // The daemon as the unit starts it: --state-dir=%h/.local/share/imsync.
    let home = env.root().join("sandbox-home");
    let state = home.join(".local/share/imsync");
    std::fs::create_dir_all(&state).unwrap();
    let trace = env.root().join("imsyncd.strace");
    let bin = harness::daemon::workspace_binary("imsyncd").unwrap();
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-s", "256", "-o"])
        .arg(&trace)
        .arg(&bin)
        .args(["--idle-timeout=0", "--state-dir"])
        .arg(&state)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("DBUS_SESSION_BUS_ADDRESS", env.phone.bus.address())
        .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}/no-system-bus", env.root().display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sync = env.phone.sync1().await.unwrap();
    for _ in 0..200 {
        if harness::bus::name_has_owner(env.phone.connection(), "org.imsync.Sync1").await.unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sync.set_account(&env.account()).await.expect("SetAccount");
    let o = sync.run_backup(Duration::from_secs(120)).await.unwrap();
    assert_eq!(o.state, "succeeded", "{:#}", o.report.raw);
    assert_eq!(o.report.class("contacts").added, 20);
    // SIGTERM the daemon (strace's child), then let strace finish writing
    let pid = harness::bus::name_owner_pid(env.phone.connection(), "org.imsync.Sync1").await.unwrap().expect("daemon pid");
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let _ = child.wait();

    let u = unit();
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut denied_writes = BTreeSet::new();
    let mut families = BTreeSet::new();
    let mut syscalls = BTreeSet::new();
    let mut photo_reads = 0;
    for line in text.lines() {
        // "<pid> name(args) = result"
        let Some(rest) = line.split_once(' ').map(|(_, r)| r.trim_start()) else { continue };
        let Some(paren) = rest.find('(') else { continue };
        let name = &rest[..paren];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        syscalls.insert(name.to_string());
        let quoted: Vec<&str> = rest.split('"').skip(1).step_by(2).collect();
        let failed = rest.rsplit_once(" = ").is_some_and(|(_, r)| r.starts_with('-'));
        match name {
            "openat" | "open" | "creat" => {
                let Some(path) = quoted.first() else { continue };
                let writes = name == "creat" || rest.contains("O_WRONLY") || rest.contains("O_RDWR") || rest.contains("O_CREAT");
                if path.contains("/photos/") && !failed {
                    photo_reads += 1;
                }
                if writes && !failed && !writable(&u, &home, path) {
                    denied_writes.insert(format!("{name} {path}"));
                }
            }
            "mkdir" | "mkdirat" | "unlink" | "unlinkat" | "rename" | "renameat" | "renameat2" | "rmdir" | "chmod"
            | "fchmodat" | "truncate" => {
                for path in &quoted {
                    if !failed && !writable(&u, &home, path) {
                        denied_writes.insert(format!("{name} {path}"));
                    }
                }
            }
            "socket" => {
                if let Some(fam) = rest[paren + 1..].split([',', ')']).next() {
                    families.insert(fam.trim().to_string());
                }
            }
            _ => {}
        }
    }
    assert!(photo_reads > 0, "the backup did not read EDS's photo files: the check saw nothing");
    assert!(denied_writes.is_empty(), "writes the unit would refuse: {denied_writes:#?}");
    let bad_families: Vec<&String> = families.iter().filter(|f| !u.families.contains(*f)).collect();
    assert!(bad_families.is_empty(), "socket families outside RestrictAddressFamilies: {bad_families:?}");

    // System calls: allowed by the first (allow) filter, not in the deny (~) filters.
    let mut allowed = None;
    let mut denied = BTreeSet::new();
    for f in &u.filters {
        match f.strip_prefix('~') {
            Some(deny) => match syscalls_of(deny) {
                Some(set) => denied.extend(set),
                None => allowed = None,
            },
            None => allowed = syscalls_of(f),
        }
    }
    // SQLite hands its journal files to the database's owner with fchown() only when it runs
    // as root (as tests here do); the user service never is root.
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if root {
        for c in ["fchown", "fchownat", "chown", "lchown"] {
            syscalls.remove(c);
        }
    }
    match allowed {
        Some(allowed) => {
            let refused: Vec<&String> =
                syscalls.iter().filter(|s| !allowed.contains(*s) || denied.contains(*s)).collect();
            assert!(refused.is_empty(), "system calls the unit's SystemCallFilter refuses: {refused:?}");
        }
        None => {
            assert!(std::env::var_os("CI").is_none(), "systemd-analyze is missing (tools/install-deps installs systemd)");
            eprintln!("NOTE: systemd-analyze not available: system calls not checked");
        }
    }
    eprintln!(
        "checked {} trace lines: {} system calls, families {:?}, {} photo reads",
        text.lines().count(),
        syscalls.len(),
        families,
        photo_reads
    );
}
