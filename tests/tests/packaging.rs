//! Packaging: the three distribution packages install the same files, the .deb's D-Bus
//! activation works, the packaged CLI answers `--help`, and the polkit rule does what its
//! comment says.
//!
//! Artifacts come from `tools/ci-packaging artifacts` (or `all`), in `$IMSYNC_PKG_DIR`
//! (default `<cargo target dir>/pkg`):
//! - `deb/imsync_<version>-1_<arch>.deb` (dpkg-buildpackage),
//! - `apk-stage/` (the APKBUILD's `package()`),
//! - `rpm-stage/` (`rpmbuild -bi`).
//!
//! When they are missing: with `CI` set (or `IMSYNC_PKG_BUILD=1`) the test builds them by
//! running `tools/ci-packaging artifacts` (one release build, several minutes); otherwise it
//! prints how to build them and returns. A missing tool (dpkg-deb, dbus-daemon, busctl, node)
//! fails under `CI` and is a printed skip elsewhere.
//!
//! Allowed differences between the trees (everything else must be identical: same paths,
//! same modes, same contents for all but the binaries, which each packager strips itself):
//! - man pages: gzip-compressed by dh_compress and rpm's brp-compress, plain in the apk stage
//!   (abuild compresses them later, when it splits -doc): compared after decompression;
//! - zsh completion: Debian's `/usr/share/zsh/vendor-completions`, elsewhere
//!   `/usr/share/zsh/site-functions`;
//! - `/usr/share/doc/imsync`: the Debian-only `copyright` and `changelog.Debian.gz`, and
//!   README.md compressed by dh_compress.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use harness::process::{clean_command, Proc};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The cargo target directory this test binary was built into.
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        return if d.is_absolute() { d } else { repo_root().join(d) };
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

fn pkg_dir() -> PathBuf {
    match std::env::var_os("IMSYNC_PKG_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        }
        None => target_dir().join("pkg"),
    }
}

/// In CI a precondition that does not hold fails the test; elsewhere it is a printed skip.
macro_rules! require {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            let why = format!($($why)+);
            if in_ci() {
                panic!("{why}");
            }
            eprintln!("SKIPPED (not in CI): {why}");
            return;
        }
    };
}

fn have(tool: &str) -> bool {
    harness::process::which(tool).is_some()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} {:?} failed ({}):\n{}\n{}",
        cmd.get_program(),
        cmd.get_args().collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Artifacts {
    deb: PathBuf,
    apk_stage: PathBuf,
    rpm_stage: PathBuf,
}

fn find_artifacts() -> Option<Artifacts> {
    let pkg = pkg_dir();
    let deb = fs::read_dir(pkg.join("deb"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("imsync_") && n.ends_with(".deb")))?;
    let apk_stage = pkg.join("apk-stage");
    let rpm_stage = pkg.join("rpm-stage");
    (apk_stage.join("usr/bin/imsync").is_file() && rpm_stage.join("usr/bin/imsync").is_file())
        .then_some(Artifacts { deb, apk_stage, rpm_stage })
}

/// The artifacts, built once per test process when allowed; `Err` says why there are none.
fn artifacts() -> Result<&'static Artifacts, String> {
    static BUILT: OnceLock<Result<Artifacts, String>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    BUILT
        .get_or_init(|| {
            if let Some(a) = find_artifacts() {
                return Ok(a);
            }
            let build = in_ci() || std::env::var("IMSYNC_PKG_BUILD").is_ok_and(|v| v == "1");
            if !build {
                return Err(format!(
                    "no packages in {}: run `tools/ci-packaging artifacts` (or set IMSYNC_PKG_BUILD=1)",
                    pkg_dir().display()
                ));
            }
            eprintln!("packaging: building the packages with tools/ci-packaging artifacts");
            let t0 = Instant::now();
            let st = Command::new(repo_root().join("tools/ci-packaging"))
                .arg("artifacts")
                .env("IMSYNC_PKG_DIR", pkg_dir())
                .status()
                .map_err(|e| format!("cannot run tools/ci-packaging: {e}"))?;
            eprintln!("packaging: tools/ci-packaging artifacts took {:.0} s", t0.elapsed().as_secs_f64());
            if !st.success() {
                return Err(format!("tools/ci-packaging artifacts failed: {st}"));
            }
            find_artifacts().ok_or_else(|| format!("tools/ci-packaging artifacts left no packages in {}", pkg_dir().display()))
        })
        .as_ref()
        .map_err(|e| e.clone())
}

/// Files (and symlinks) under `root`: relative path -> (mode, contents or link target).
fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            let meta = fs::symlink_metadata(&p).expect("metadata");
            let rel = p.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
            if meta.is_dir() {
                walk(root, &p, out);
            } else if meta.file_type().is_symlink() {
                out.insert(rel, (0o777, fs::read_link(&p).expect("readlink").into_os_string().into_encoded_bytes()));
            } else {
                out.insert(rel, (meta.permissions().mode() & 0o7777, fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).expect("write to gzip");
    });
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("writer");
    assert!(out.status.success(), "gzip -dc failed");
    out.stdout
}

/// The tree with the documented allowed differences taken out (see the module comment).
fn normalize(flavor: &str, files: BTreeMap<String, (u32, Vec<u8>)>) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for (path, (mode, mut data)) in files {
        let mut path = path;
        if flavor == "deb" && (path == "usr/share/doc/imsync/copyright" || path == "usr/share/doc/imsync/changelog.Debian.gz") {
            continue;
        }
        if (path.starts_with("usr/share/man/") || path.starts_with("usr/share/doc/")) && path.ends_with(".gz") {
            path.truncate(path.len() - 3);
            data = gunzip(&data);
        }
        if let Some(rest) = path.strip_prefix("usr/share/zsh/vendor-completions/") {
            path = format!("usr/share/zsh/site-functions/{rest}");
        }
        out.insert(path, (mode, data));
    }
    out
}

fn extract_deb(deb: &Path, into: &Path) {
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(into));
}

const BINARIES: &[&str] = &["usr/bin/imsync", "usr/libexec/imsyncd"];

/// Files every package must install (the rest, e.g. one man page per subcommand, is compared
/// between the packages).
const REQUIRED: &[&str] = &[
    "usr/bin/imsync",
    "usr/libexec/imsyncd",
    "usr/lib/systemd/user/imsyncd.service",
    "usr/share/dbus-1/services/org.imsync.Sync1.service",
    "usr/share/dbus-1/interfaces/org.imsync.Sync1.xml",
    "usr/share/dbus-1/interfaces/org.imsync.Job1.xml",
    "usr/share/polkit-1/rules.d/50-imsync-modemmanager.rules",
    "usr/share/man/man1/imsync.1",
    "usr/share/man/man8/imsyncd.8",
    "usr/share/bash-completion/completions/imsync",
    "usr/share/zsh/site-functions/_imsync",
    "usr/share/fish/vendor_completions.d/imsync.fish",
    "usr/share/doc/imsync/README.md",
];

/// Installed file -> file in the repository it is a verbatim copy of.
const VERBATIM: &[(&str, &str)] = &[
    ("usr/lib/systemd/user/imsyncd.service", "systemd/imsyncd.service"),
    ("usr/share/dbus-1/services/org.imsync.Sync1.service", "systemd/org.imsync.Sync1.service"),
    ("usr/share/dbus-1/interfaces/org.imsync.Sync1.xml", "dbus-interfaces/org.imsync.Sync1.xml"),
    ("usr/share/dbus-1/interfaces/org.imsync.Job1.xml", "dbus-interfaces/org.imsync.Job1.xml"),
    ("usr/share/polkit-1/rules.d/50-imsync-modemmanager.rules", "packaging/polkit/50-imsync-modemmanager.rules"),
    ("usr/share/doc/imsync/README.md", "README.md"),
];

#[test]
fn deb_apk_and_rpm_install_the_same_files() {
    require!(have("dpkg-deb") && have("gzip"), "dpkg-deb or gzip missing (tools/ci-packaging deps)");
    let a = match artifacts() {
        Ok(a) => a,
        Err(why) => {
            require!(false, "{why}");
            unreachable!()
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    extract_deb(&a.deb, tmp.path());
    let trees = [
        ("deb", normalize("deb", tree(tmp.path()))),
        ("apk", normalize("apk", tree(&a.apk_stage))),
        ("rpm", normalize("rpm", tree(&a.rpm_stage))),
    ];
    for (name, t) in &trees {
        eprintln!("{name}: {} files", t.len());
        for req in REQUIRED {
            assert!(t.contains_key(*req), "{name} does not install /{req}");
        }
    }

    // Same paths.
    let (base_name, base) = &trees[0];
    let mut problems = Vec::new();
    for (name, t) in &trees[1..] {
        for p in base.keys().filter(|p| !t.contains_key(*p)) {
            problems.push(format!("/{p}: in {base_name}, not in {name}"));
        }
        for p in t.keys().filter(|p| !base.contains_key(*p)) {
            problems.push(format!("/{p}: in {name}, not in {base_name}"));
        }
    }
    assert!(problems.is_empty(), "the packages install different files:\n{}", problems.join("\n"));

    // Same modes and contents (binaries: executable, contents differ by strip).
    for (path, (mode, data)) in base {
        for (name, t) in &trees[1..] {
            let (m, d) = &t[path];
            if BINARIES.contains(&path.as_str()) {
                assert_eq!(*m, 0o755, "{name}: /{path} mode {m:o}");
                assert_eq!(*mode, 0o755, "{base_name}: /{path} mode {mode:o}");
                assert!(d.starts_with(b"\x7fELF"), "{name}: /{path} is not an ELF binary");
                continue;
            }
            assert_eq!(m, mode, "/{path}: mode {m:o} in {name}, {mode:o} in {base_name}");
            assert_eq!(*m, 0o644, "/{path}: mode {m:o} in {name}");
            assert!(d == data, "/{path}: contents differ between {name} and {base_name}");
        }
    }
    for (installed, source) in VERBATIM {
        let want = fs::read(repo_root().join(source)).expect(source);
        for (name, t) in &trees {
            assert!(t[*installed].1 == want, "{name}: /{installed} is not a copy of {source}");
        }
    }
}

#[test]
fn deb_metadata() {
    require!(have("dpkg-deb"), "dpkg-deb missing (tools/ci-packaging deps)");
    let a = match artifacts() {
        Ok(a) => a,
        Err(why) => {
            require!(false, "{why}");
            unreachable!()
        }
    };
    let field = |f: &str| run_ok(Command::new("dpkg-deb").arg("-f").arg(&a.deb).arg(f)).trim().to_string();
    let depends = field("Depends");
    for d in ["evolution-data-server", "dbus | dbus-broker"] {
        assert!(depends.contains(d), "Depends lacks {d}: {depends}");
    }
    let recommends = field("Recommends");
    for r in ["modemmanager", "gnome-keyring"] {
        assert!(recommends.contains(r), "Recommends lacks {r}: {recommends}");
    }
    assert_eq!(field("Package"), "imsync");
    let cargo_version = fs::read_to_string(repo_root().join("Cargo.toml"))
        .expect("Cargo.toml")
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = ").map(|v| v.trim_matches('"').to_string()))
        .expect("workspace version");
    assert!(field("Version").starts_with(&format!("{cargo_version}-")), "deb version {} vs Cargo {cargo_version}", field("Version"));
}

/// Where the packaged files are: the real system when this very .deb is installed (CI:
/// `tools/ci-packaging all`), else a prefix the .deb is extracted into.
struct Installed {
    root: PathBuf,
    real: bool,
    _tmp: Option<tempfile::TempDir>,
}

fn installed(a: &Artifacts) -> Installed {
    // CI (as root) installs the .deb for real, as a user would: `apt-get install ./imsync.deb`.
    {
        let mut done = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
        if in_ci() && unsafe { libc::geteuid() } == 0 && !*done && !deb_is_installed(a) {
            eprintln!("packaging: installing {} (tools/ci-packaging install-deb)", a.deb.display());
            let st = Command::new(repo_root().join("tools/ci-packaging"))
                .arg("install-deb")
                .env("IMSYNC_PKG_DIR", pkg_dir())
                .status()
                .expect("run tools/ci-packaging install-deb");
            assert!(st.success(), "tools/ci-packaging install-deb failed: {st}");
        }
        *done = true;
    }
    if deb_is_installed(a) {
        eprintln!("using the installed package");
        return Installed { root: PathBuf::from("/"), real: true, _tmp: None };
    }
    let tmp = tempfile::Builder::new().prefix("imsync-deb-").tempdir().expect("tempdir");
    extract_deb(&a.deb, tmp.path());
    eprintln!("using the .deb extracted into {}", tmp.path().display());
    Installed { root: tmp.path().to_path_buf(), real: false, _tmp: Some(tmp) }
}

/// Held while the machine's installed packages may change (and by checks that read them).
static MACHINE: Mutex<bool> = Mutex::new(false);

/// Whether this very .deb (same version and same imsyncd) is installed on the machine.
fn deb_is_installed(a: &Artifacts) -> bool {
    let deb_version = run_ok(Command::new("dpkg-deb").arg("-f").arg(&a.deb).arg("Version")).trim().to_string();
    let sys_version = Command::new("dpkg-query")
        .args(["-W", "-f=${Version} ${db:Status-Status}", "imsync"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if sys_version.as_deref() == Some(&format!("{deb_version} installed")) && Path::new("/usr/libexec/imsyncd").is_file() {
        let pkg_bin = {
            let tmp = tempfile::tempdir().expect("tempdir");
            extract_deb(&a.deb, tmp.path());
            fs::read(tmp.path().join("usr/libexec/imsyncd")).expect("imsyncd in the deb")
        };
        if fs::read("/usr/libexec/imsyncd").ok().as_deref() == Some(&pkg_bin[..]) {
            return true;
        }
        eprintln!("the installed imsync {deb_version} is not this build");
    }
    false
}

/// The daemon is D-Bus activated from the packaged service file (not started by the test)
/// and answers GetAccount with org.imsync.Error.NotConfigured on an empty state.
#[test]
fn deb_dbus_activation_smoke() {
    require!(
        have("dpkg-deb") && have("dbus-daemon") && have("busctl"),
        "dpkg-deb, dbus-daemon or busctl missing (tools/ci-packaging deps)"
    );
    let a = match artifacts() {
        Ok(a) => a,
        Err(why) => {
            require!(false, "{why}");
            unreachable!()
        }
    };
    let inst = installed(a);
    let dir = tempfile::Builder::new().prefix("imsync-act-").tempdir_in("/tmp").expect("tempdir");
    let d = dir.path();
    for sub in ["home", "config", "data", "cache", "state", "runtime"] {
        fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    fs::set_permissions(d.join("runtime"), fs::Permissions::from_mode(0o700)).expect("chmod");

    // The installed service directory as it is; for an extracted package a copy whose Exec
    // points into the prefix (nothing else changed).
    let packaged_service = inst.root.join("usr/share/dbus-1/services/org.imsync.Sync1.service");
    let service_text = fs::read_to_string(&packaged_service).expect("packaged D-Bus service file");
    assert!(service_text.contains("\nExec=/usr/libexec/imsyncd "), "unexpected Exec in {service_text}");
    let servicedir = if inst.real {
        PathBuf::from("/usr/share/dbus-1/services")
    } else {
        let s = d.join("services");
        fs::create_dir_all(&s).expect("mkdir");
        let exec = inst.root.join("usr/libexec/imsyncd");
        fs::write(
            s.join("org.imsync.Sync1.service"),
            service_text.replace("Exec=/usr/libexec/imsyncd", &format!("Exec={}", exec.display())),
        )
        .expect("write service file");
        s
    };
    let sock = d.join("runtime/bus");
    let address = format!("unix:path={}", sock.display());
    let conf = d.join("bus.conf");
    fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{servicedir}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            servicedir = servicedir.display()
        ),
    )
    .expect("bus.conf");
    let env = |c: &mut Command| {
        c.env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("XDG_STATE_HOME", d.join("state"))
            .env("XDG_RUNTIME_DIR", d.join("runtime"))
            .env("DBUS_SESSION_BUS_ADDRESS", &address);
    };
    let log = d.join("bus.log");
    let (_, err) = harness::process::log_file(&log).expect("log");
    let mut cmd = clean_command("dbus-daemon", d);
    env(&mut cmd);
    cmd.arg("--nofork")
        .arg("--print-address=1")
        .arg(format!("--config-file={}", conf.display()))
        .stdout(Stdio::piped())
        .stderr(err);
    let mut bus = Proc::spawn("dbus-daemon", &mut cmd).expect("dbus-daemon");
    {
        use std::io::BufRead;
        let out = bus.child_mut().and_then(|c| c.stdout.take()).expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).expect("bus address");
        assert!(!line.trim().is_empty(), "dbus-daemon did not start\n{}", harness::process::tail(&log, 2000));
    }
    let busctl = |args: &[&str]| {
        let mut c = clean_command("busctl", d);
        env(&mut c);
        // At debug level busctl logs the reply's error name, which it otherwise hides.
        c.env("SYSTEMD_LOG_LEVEL", "debug").arg(format!("--address={address}")).args(args);
        run(&mut c)
    };

    // Nobody owns the name before the call: the test does not start the daemon.
    let before = busctl(&["call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", "org.imsync.Sync1"]);
    assert_eq!(String::from_utf8_lossy(&before.stdout).trim(), "b false");

    let t0 = Instant::now();
    let out = busctl(&["call", "org.imsync.Sync1", "/org/imsync/Sync1", "org.imsync.Sync1", "GetAccount"]);
    let elapsed = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let pid = daemon_pid(&busctl);
    // Stop the activated daemon whatever happens below (it was started by the bus, not us).
    let _daemon = pid.map(KillOnDrop);
    assert!(
        !out.status.success() && stderr.contains("error-name=org.imsync.Error.NotConfigured"),
        "GetAccount on an empty state should fail with org.imsync.Error.NotConfigured; got {}:\n{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr.lines().filter(|l| l.contains("error") || l.contains("Call failed")).collect::<Vec<_>>().join("\n"),
        harness::process::tail(&log, 4000)
    );
    eprintln!("GetAccount -> org.imsync.Error.NotConfigured after activation in {} ms", elapsed.as_millis());

    // It was the bus that started it: the activation is in the bus log, and the daemon's
    // environment has DBUS_STARTER_ADDRESS, which only dbus-daemon's activation sets.
    let pid = pid.expect("org.imsync.Sync1 has an owner after the call");
    let bus_log = fs::read_to_string(&log).unwrap_or_default();
    assert!(bus_log.contains("Activating service name='org.imsync.Sync1'"), "no activation in the bus log:\n{bus_log}");
    assert!(bus_log.contains("Successfully activated service 'org.imsync.Sync1'"), "{bus_log}");
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv.starts_with(b"DBUS_STARTER_ADDRESS=")),
        "the daemon (pid {pid}) was not started by D-Bus activation"
    );
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("daemon exe");
    assert_eq!(exe, inst.root.join("usr/libexec/imsyncd"), "the activated daemon is not the packaged one");
    // Its state went where the bus's XDG_DATA_HOME says.
    assert!(d.join("data/imsync/state.db").is_file(), "no state database in XDG_DATA_HOME/imsync");
    drop(_daemon);
    bus.stop();
}

fn daemon_pid(busctl: &dyn Fn(&[&str]) -> Output) -> Option<u32> {
    let out = busctl(&[
        "call",
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "GetConnectionUnixProcessID",
        "s",
        "org.imsync.Sync1",
    ]);
    // "u 1234"
    String::from_utf8_lossy(&out.stdout).trim().strip_prefix("u ").and_then(|p| p.parse().ok())
}

/// SIGTERM (then SIGKILL) to a process this test caused to exist.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = self.0 as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // a zombie until its parent reaps it: good enough
            if fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// `tools/ci-packaging check-unit`: systemd-analyze verify of the user unit and its offline
/// security exposure, held at or below the threshold written in the script.
#[test]
fn unit_verify_and_exposure() {
    require!(have("systemd-analyze"), "systemd-analyze missing (tools/ci-packaging deps)");
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(Command::new(repo_root().join("tools/ci-packaging")).arg("check-unit").env("IMSYNC_PKG_DIR", pkg_dir()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tools/ci-packaging check-unit failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprint!("{stdout}");
    assert!(stdout.contains("exposure score of imsyncd.service: "), "{stdout}");
}

/// Subcommands listed in a clap help text's "Commands:" section (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// `imsync --help` and the help of every (nested) subcommand, from the packaged binary;
/// each subcommand also has its man page and its bash completion; `imsyncd --version`.
#[test]
fn packaged_cli_help_and_version() {
    require!(have("dpkg-deb"), "dpkg-deb missing (tools/ci-packaging deps)");
    let a = match artifacts() {
        Ok(a) => a,
        Err(why) => {
            require!(false, "{why}");
            unreachable!()
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    extract_deb(&a.deb, tmp.path());
    let root = tmp.path();
    let imsync = root.join("usr/bin/imsync");
    let help = |args: &[&str]| -> String {
        let mut c = clean_command(&imsync, root);
        c.args(args).arg("--help");
        run_ok(&mut c)
    };

    let top = help(&[]);
    let subs = subcommands(&top);
    for expected in ["account", "backup", "status", "history", "cancel"] {
        assert!(subs.iter().any(|s| s == expected), "`imsync --help` does not list {expected}:\n{top}");
    }
    let bash = fs::read_to_string(root.join("usr/share/bash-completion/completions/imsync")).expect("bash completion");
    let mut pages = 0;
    let mut queue: Vec<Vec<String>> = subs.iter().map(|s| vec![s.clone()]).collect();
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        assert!(text.contains("Usage: imsync "), "imsync {} --help:\n{text}", path.join(" "));
        let page = root.join(format!("usr/share/man/man1/imsync-{}.1.gz", path.join("-")));
        assert!(page.is_file(), "no man page {} for `imsync {}`", page.display(), path.join(" "));
        pages += 1;
        assert!(bash.contains(path.last().unwrap().as_str()), "bash completion does not know `{}`", path.join(" "));
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
    }
    eprintln!("checked --help of {} subcommands and their man pages", pages);

    let mut c = clean_command(root.join("usr/libexec/imsyncd"), root);
    let version = run_ok(c.arg("--version"));
    assert!(version.starts_with("imsyncd "), "imsyncd --version: {version}");
    let mut c = clean_command(root.join("usr/libexec/imsyncd"), root);
    let dhelp = run_ok(c.arg("--help"));
    for opt in ["--idle-timeout", "--state-dir", "--log-level"] {
        assert!(dhelp.contains(opt), "imsyncd --help lacks {opt}");
    }
    let mut c = clean_command(&imsync, root);
    let v = run_ok(c.arg("--version"));
    assert!(v.starts_with("imsync "), "imsync --version: {v}");
}

/// The polkit rule grants org.freedesktop.ModemManager1.Messaging to an active local
/// session, and to a session-less user service while its user is active on a seat; and
/// nothing else. Run with node against a small stand-in for polkit's JavaScript API.
#[test]
fn polkit_rule_grants_only_messaging() {
    require!(have("node"), "node missing (it is on the project's machines)");
    let rule = repo_root().join("packaging/polkit/50-imsync-modemmanager.rules");
    let script = format!(
        r#"
const fs = require("fs");
let rules = [];
let spawned = [];
let userState = "active";
const polkit = {{
  Result: {{ YES: "yes", NO: "no", AUTH_SELF: "auth_self", NOT_HANDLED: null }},
  addRule: (f) => rules.push(f),
  log: (m) => {{}},
  spawn: (argv) => {{ spawned.push(argv.join(" ")); if (userState === null) throw new Error("no logind"); return userState + "\n"; }},
}};
eval(fs.readFileSync({rule:?}, "utf8"));
if (rules.length !== 1) throw new Error("expected one rule, got " + rules.length);
const decide = (id, s) => rules[0]({{ id }}, Object.assign({{ user: "phone", session: "", local: false, active: false }}, s));
const MSG = "org.freedesktop.ModemManager1.Messaging";
const cases = [
  [MSG, {{ session: "c1", local: true, active: true }}, "active", "yes"],
  [MSG, {{ session: "c2", local: false, active: true }}, "active", null],
  [MSG, {{ session: "c1", local: true, active: false }}, "active", null],
  [MSG, {{ session: "" }}, "active", "yes"],
  [MSG, {{ session: "" }}, "online", null],
  [MSG, {{ session: "" }}, null, null],
  ["org.freedesktop.ModemManager1.Device.Control", {{ session: "c1", local: true, active: true }}, "active", null],
  ["org.freedesktop.ModemManager1.Messaging.Extra", {{ session: "" }}, "active", null],
];
for (const [id, subj, state, want] of cases) {{
  userState = state;
  const got = decide(id, subj);
  if (got !== want) throw new Error(id + " " + JSON.stringify(subj) + " state=" + state + ": got " + got + ", want " + want);
}}
if (!spawned.every((c) => c === "loginctl show-user --property=State --value phone")) throw new Error("spawned " + spawned);
console.log("polkit rule: " + cases.length + " cases ok");
"#
    );
    let out = run(Command::new("node").arg("-e").arg(script));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}

/// The release imsyncd the packages ship is linked as service/build.rs says: the start-up
/// functions listed by `tools/startup-profile` sit together in `.text.imsync_startup`, the
/// relative relocations are packed (DT_RELR) and the C math library is not loaded. A build
/// whose symbol names no longer match the list (new dependencies, another toolchain) fails
/// here: re-run tools/startup-profile (README, Performance: idle RSS 8.1 → 4.0 MB).
#[test]
fn release_imsyncd_groups_startup_code() {
    require!(have("nm") && have("readelf"), "nm/readelf missing (binutils)");
    if let Err(why) = artifacts() {
        require!(false, "{why}");
    }
    let bin = target_dir().join("release/imsyncd");
    let sections = run_ok(Command::new("readelf").args(["-S", "-W"]).arg(&bin));
    let startup = sections
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|w| *w == ".text.imsync_startup")?;
            let addr = u64::from_str_radix(f.get(i + 2)?, 16).ok()?;
            let size = u64::from_str_radix(f.get(i + 4)?, 16).ok()?;
            Some(addr..addr + size)
        })
        .unwrap_or_else(|| panic!("{}: no .text.imsync_startup section (service/build.rs)", bin.display()));
    assert!(sections.contains(".relr.dyn"), "{}: relative relocations not packed (no .relr.dyn)", bin.display());
    let dynamic = run_ok(Command::new("readelf").arg("-d").arg(&bin));
    assert!(!dynamic.contains("libm.so"), "{}: links libm again:\n{dynamic}", bin.display());

    let script = fs::read_to_string(repo_root().join("service/link/imsyncd-startup.ld")).expect("startup script");
    let listed: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("*(.text.")?.split_whitespace().next())
        .collect();
    assert!(listed.len() > 1000, "only {} functions in the start-up script", listed.len());
    let symbols: BTreeMap<String, u64> = run_ok(Command::new("nm").arg(&bin))
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let _kind = f.next()?;
            Some((f.next()?.to_string(), addr))
        })
        .collect();
    let placed = listed.iter().filter(|n| symbols.get(**n).is_some_and(|a| startup.contains(a))).count();
    eprintln!("release imsyncd: {placed} of {} start-up functions grouped, {} KiB", listed.len(), (startup.end - startup.start) / 1024);
    assert!(
        placed * 100 >= listed.len() * 95,
        "only {placed} of {} functions of service/link/imsyncd-startup.ld are in .text.imsync_startup: \
         the list is stale for this build; run tools/startup-profile",
        listed.len()
    );
}
