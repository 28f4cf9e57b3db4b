//! Integration test harness for imsync.
//!
//! Every test gets its own world, so tests can run in parallel:
//!
//! * a **phone** ([`Phone`]): a private `dbus-daemon` ([`bus`]) on which the
//!   real evolution-data-server is activatable ([`eds`]), optionally
//!   gnome-keyring as Secret Service ([`keyring`]), and the real `imsyncd`
//!   ([`daemon`]) with its own state dirs;
//! * a **SyncML server** ([`syncml_server`]): SyncEvolution's
//!   `syncevo-http-server` on 127.0.0.1, a free port, random credentials;
//! * test data ([`vcard`], [`png`]) and clients for the daemon's API
//!   ([`sync1`]) and for introspection ([`introspect`]).
//!
//! [`TestEnv`] ties them together under one temporary directory, which is
//! removed afterwards unless the test failed or `IMSYNC_KEEP_TEST_DIR=1`.
//! Everything the harness starts is stopped on drop (by PID), and processes
//! started on its behalf (EDS factories, SyncEvolution helpers) are found by
//! an environment marker ([`process::MARKER_DIR`]).
//!
//! Needs (Debian): dbus-daemon, evolution-data-server, syncevolution,
//! syncevolution-http, python3-twisted, gnome-keyring; see `.ci/run`.

pub mod bus;
pub mod calendar;
pub mod daemon;
pub mod eds;
pub mod fault_proxy;
pub mod hostile;
pub mod introspect;
pub mod keyring;
pub mod modem;
pub mod png;
pub mod process;
pub mod proxy;
pub mod sync1;
pub mod syncml_server;
pub mod tls;
pub mod vcard;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub use bus::Bus;
pub use daemon::Daemon;
pub use eds::AddressBook;
pub use keyring::Keyring;
pub use sync1::{JobOutcome, JobWatcher, Report, Sync1};
pub use syncml_server::SyncmlServer;
pub use vcard::ContactSpec;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// `tokio::time::timeout` with the elapsed case as an error.
pub async fn timeout<F: std::future::Future>(d: Duration, f: F) -> Result<F::Output> {
    tokio::time::timeout(d, f).await.map_err(|_| format!("timed out after {d:?}").into())
}

/// Random hex bytes from the OS.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("getrandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `prefix` + random alphanumerics (`len` of them).
pub fn random_token(prefix: &str, len: usize) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut b = vec![0u8; len];
    getrandom::fill(&mut b).expect("getrandom");
    let s: String = b.iter().map(|x| ALPHA[*x as usize % ALPHA.len()] as char).collect();
    format!("{prefix}{s}")
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("getrandom");
    u64::from_le_bytes(b)
}

/// `base64("user:password")`, as in HTTP basic / SyncML auth-basic.
pub fn basic_auth(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Base directory for test dirs: short, because unix socket paths are
/// limited to 107 bytes. `IMSYNC_TEST_TMPDIR` overrides it.
fn tmp_base() -> PathBuf {
    if let Ok(d) = std::env::var("IMSYNC_TEST_TMPDIR") {
        return PathBuf::from(d);
    }
    let t = std::env::temp_dir();
    if t.as_os_str().len() <= 40 {
        t
    } else {
        PathBuf::from("/tmp")
    }
}

/// Options for one phone.
#[derive(Clone, Debug)]
pub struct PhoneOptions {
    /// Run gnome-keyring (Secret Service) on the phone's bus.
    pub keyring: bool,
    /// Start imsyncd right away (else call `phone.daemon.start()`).
    pub start_daemon: bool,
}

impl Default for PhoneOptions {
    fn default() -> Self {
        PhoneOptions { keyring: true, start_daemon: true }
    }
}

/// One phone: private bus + EDS (activatable) + optional keyring + imsyncd.
pub struct Phone {
    pub name: String,
    dir: PathBuf,
    book: Option<AddressBook>,
    conn: zbus::Connection,
    /// imsyncd (stopped first on drop)
    pub daemon: Daemon,
    pub keyring: Option<Keyring>,
    pub bus: Bus,
    /// How long the bus + EDS registry and the first book open took.
    pub eds_startup: Duration,
}

impl Phone {
    pub async fn start(root: &Path, dir: &Path, name: &str, opts: &PhoneOptions) -> Result<Phone> {
        std::fs::create_dir_all(dir)?;
        let t0 = Instant::now();
        let bus = Bus::start(root, &dir.join("b"), &bus::BusOptions::eds())?;
        let keyring = if opts.keyring { Some(Keyring::start(root, &bus)?) } else { None };
        let conn = bus.connect().await?;
        // activate the registry and the address-book factory, open the book
        let book = AddressBook::open_system(bus.address()).await?;
        let eds_startup = t0.elapsed();
        let daemon = Daemon::new(root, bus.address(), &dir.join("d"))?;
        let mut phone = Phone { name: name.into(), dir: dir.to_path_buf(), book: Some(book), conn, daemon, keyring, bus, eds_startup };
        if opts.start_daemon {
            phone.daemon.start().await?;
        }
        Ok(phone)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A connection to the phone's bus (shared by the helpers).
    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    /// The test's own client of `system-address-book`.
    pub fn book(&self) -> &AddressBook {
        self.book.as_ref().expect("book")
    }

    pub fn book_mut(&mut self) -> &mut AddressBook {
        self.book.as_mut().expect("book")
    }

    /// Create the contacts in EDS; returns their EDS UIDs (same order).
    pub async fn seed(&self, specs: &[ContactSpec]) -> Result<Vec<String>> {
        let vcards: Vec<String> = specs.iter().map(|s| s.to_vcard(None)).collect();
        self.book().create_contacts(&vcards).await
    }

    /// Kill EDS's address-book factory (SIGKILL) and reopen the test's book.
    pub async fn kill_addressbook_factory(&mut self) -> Result<Option<u32>> {
        let pid = eds::kill_addressbook_factory(&self.conn).await?;
        Ok(pid)
    }

    /// A client for imsyncd's API on the phone's bus.
    pub async fn sync1(&self) -> Result<Sync1> {
        Sync1::new(&self.conn).await
    }

    /// Log files of this phone: imsyncd (every start), the bus (with EDS's output).
    pub fn log_paths(&self) -> Vec<PathBuf> {
        let mut v = self.daemon.log_paths().to_vec();
        v.push(self.bus.log_path().to_path_buf());
        v
    }
}

impl Phone {
    /// Stop imsyncd, the keyring and the bus (idempotent; also on drop).
    pub fn shutdown(&mut self) {
        self.book = None;
        self.daemon.stop();
        if let Some(k) = self.keyring.as_mut() {
            k.stop();
        }
        self.bus.stop();
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Options for a [`TestEnv`].
#[derive(Clone, Debug)]
pub struct EnvOptions {
    pub phone: PhoneOptions,
    /// Start a SyncML server.
    pub server: bool,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions { phone: PhoneOptions::default(), server: true }
    }
}

/// A phone and a SyncML server under one temporary directory.
pub struct TestEnv {
    /// Short random id of this run (used in generated contacts' keys).
    pub run_id: String,
    /// Seed of the contact generator (printed; `IMSYNC_TEST_SEED` fixes it).
    pub seed: u64,
    pub phone: Phone,
    server: Option<SyncmlServer>,
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
    name: String,
    keep: bool,
    /// Every password handed to the daemon (checked by [`TestEnv::assert_no_secrets_leaked`]).
    secrets: std::sync::Mutex<Vec<(String, String)>>,
}

impl TestEnv {
    pub async fn new(name: &str) -> Result<TestEnv> {
        Self::with_options(name, EnvOptions::default()).await
    }

    pub async fn with_options(name: &str, opts: EnvOptions) -> Result<TestEnv> {
        Self::with_server_options(name, opts, syncml_server::ServerOptions::default()).await
    }

    /// Like [`TestEnv::with_options`], with the server started with `server_opts`.
    pub async fn with_server_options(
        name: &str,
        opts: EnvOptions,
        server_opts: syncml_server::ServerOptions,
    ) -> Result<TestEnv> {
        process::kill_orphans_of_dead_tests();
        let base = tmp_base();
        std::fs::create_dir_all(&base)?;
        let dir = tempfile::Builder::new().prefix("imt-").tempdir_in(&base)?;
        let root = dir.path().canonicalize()?;
        std::fs::write(root.join("TEST"), format!("{name}\n"))?;
        let seed = std::env::var("IMSYNC_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(random_u64);
        let run_id = random_hex(3);
        eprintln!("harness[{name}]: dir {} seed {seed} (IMSYNC_TEST_SEED={seed} to repeat)", root.display());
        // start the server and the phone at the same time: the server's
        // startup is mostly waiting for processes
        let t0 = Instant::now();
        let server_thread = if opts.server {
            let (r, d) = (root.clone(), root.join("s"));
            Some(std::thread::spawn(move || SyncmlServer::start_with(&r, &d, server_opts)))
        } else {
            None
        };
        let phone = Phone::start(&root, &root.join("p"), "phone", &opts.phone).await;
        let server = match server_thread {
            Some(t) => Some(t.join().map_err(|_| "server start panicked")??),
            None => None,
        };
        let phone = phone?;
        eprintln!(
            "harness[{name}]: ready in {:.2}s (bus+EDS+book {:.2}s, SyncML server {:.2}s)",
            t0.elapsed().as_secs_f64(),
            phone.eds_startup.as_secs_f64(),
            server.as_ref().map(|s| s.startup_time().as_secs_f64()).unwrap_or(0.0)
        );
        Ok(TestEnv { run_id, seed, phone, server, root, dir: Some(dir), name: name.into(), keep: false, secrets: Default::default() })
    }

    /// The test's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn server(&self) -> &SyncmlServer {
        self.server.as_ref().expect("this TestEnv has no SyncML server")
    }

    /// Another phone (own bus, EDS, keyring, fresh imsyncd state → another
    /// device ID) in this test dir, for the same server.
    pub async fn new_phone(&self, name: &str, opts: &PhoneOptions) -> Result<Phone> {
        Phone::start(&self.root, &self.root.join(name), name, opts).await
    }

    /// `count` generated contacts of this run.
    pub fn contacts(&self, count: usize) -> Vec<ContactSpec> {
        vcard::generate(&self.run_id, self.seed, count)
    }

    /// Contacts `from..from+count` (e.g. for a second phone: distinct keys).
    pub fn contacts_range(&self, from: usize, count: usize) -> Vec<ContactSpec> {
        (from..from + count).map(|n| ContactSpec::generate(&self.run_id, self.seed, n)).collect()
    }

    /// Account settings for the server with its credentials (contacts only).
    pub fn account(&self) -> sync1::Dict {
        let s = self.server();
        self.remember_secret(s.username(), s.password());
        sync1::contacts_account(s.url(), s.username(), s.password())
    }

    /// Register a password the daemon was given, for the leak check.
    pub fn remember_secret(&self, user: &str, password: &str) {
        let mut v = self.secrets.lock().unwrap();
        if !v.iter().any(|(u, p)| u == user && p == password) {
            v.push((user.into(), password.into()));
        }
    }

    /// The stored contacts of database `db` on the server, parsed.
    pub fn server_contacts(&self, db: &str) -> Vec<(String, vcard::Contact)> {
        self.server()
            .items(db)
            .into_iter()
            .map(|(n, b)| {
                let c = vcard::parse(&String::from_utf8_lossy(&b)).unwrap_or_default();
                (n, c)
            })
            .collect()
    }

    /// Problems (empty = none) between `expected` and the server's `contacts`
    /// database, compared field by field (see [`vcard::compare`]). With
    /// `exact`, the server must hold nothing else.
    pub fn server_contact_problems(&self, expected: &[ContactSpec], exact: bool) -> Vec<String> {
        let stored = self.server_contacts("contacts");
        let exp: Vec<vcard::Contact> = expected.iter().map(|s| s.contact()).collect();
        let mut problems = vcard::compare_sets(&exp, &stored);
        if !exact {
            problems.retain(|p| !p.contains("unexpected on the server"));
        }
        // photos: decoded bytes must be the PNG we generated
        for spec in expected.iter().filter(|s| s.photo.is_some()) {
            if let Some((name, c)) = stored.iter().find(|(_, c)| c.key().as_deref() == Some(spec.key())) {
                let got = c.first("PHOTO").and_then(|p| p.binary());
                if got.as_ref() != spec.photo.as_ref() {
                    problems.push(format!(
                        "{} (server item {name}): PHOTO bytes differ ({:?} bytes, expected {})",
                        spec.key(),
                        got.map(|g| g.len()),
                        spec.photo.as_ref().unwrap().len()
                    ));
                }
            }
        }
        problems
    }

    /// Panic with a readable list if the server's contacts differ from `expected`.
    pub fn assert_server_contacts(&self, expected: &[ContactSpec], exact: bool) {
        let problems = self.server_contact_problems(expected, exact);
        if !problems.is_empty() {
            let n = problems.len();
            let shown: Vec<&String> = problems.iter().take(40).collect();
            panic!(
                "server contacts differ from the expected {} contacts ({} stored; {n} problems, first {}):\n{}\n\n\
                 allowed rewrites (everything else must be equal):\n - {}\n\nserver items in {}\n{}",
                expected.len(),
                self.server().item_count("contacts"),
                shown.len(),
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
                vcard::ALLOWED_REWRITES.join("\n - "),
                self.server().db_dir("contacts").display(),
                self.daemon_log_tail()
            );
        }
    }

    /// Every file under the daemon's state dirs and logs of `phone`, and the
    /// logs, checked for the passwords and base64("user:password") given to
    /// the daemon. Returns the findings (empty = no leak).
    pub fn secret_leaks(&self, phone: &Phone) -> Vec<String> {
        let secrets = self.secrets.lock().unwrap().clone();
        let mut needles: Vec<(String, Vec<u8>)> = vec![];
        for (u, p) in &secrets {
            needles.push((format!("password {p:?}"), p.as_bytes().to_vec()));
            let b = basic_auth(u, p);
            needles.push((format!("base64({u}:{p})"), b.as_bytes().to_vec()));
            needles.push((format!("base64({u}:{p}) unpadded"), b.trim_end_matches('=').as_bytes().to_vec()));
        }
        let mut paths: Vec<PathBuf> = phone.daemon.dirs().all().iter().map(|p| p.to_path_buf()).collect();
        paths.extend(phone.daemon.log_paths().iter().cloned());
        scan_for(&paths, &needles)
    }

    pub fn assert_no_secrets_leaked(&self, phone: &Phone) {
        let leaks = self.secret_leaks(phone);
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }

    /// Tail of the daemon log (for assertion messages).
    pub fn daemon_log_tail(&self) -> String {
        self.phone.daemon.log_tail(6000)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keep the test dir after drop (as `IMSYNC_KEEP_TEST_DIR=1` does).
    pub fn keep_dir(&mut self) {
        self.keep = true;
    }
}

/// Search files (recursively under directories) for byte strings.
pub fn scan_for(paths: &[PathBuf], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = vec![];
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else if md.is_file() {
            let Ok(data) = std::fs::read(&p) else { continue };
            for (what, n) in needles {
                if !n.is_empty() && data.windows(n.len()).any(|w| w == n.as_slice()) {
                    found.push(format!("{what} found in {}", p.display()));
                }
            }
        }
    }
    found
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        // phone first (imsyncd, keyring, bus), then the server
        self.phone.shutdown();
        drop(self.server.take());
        let stragglers = process::kill_stragglers(&self.root);
        if !stragglers.is_empty() && !failed {
            // EDS factories and SyncEvolution helpers normally exit with their bus
            eprintln!("harness[{}]: killed stragglers {stragglers:?}", self.name);
        }
        let keep = failed || self.keep || std::env::var("IMSYNC_KEEP_TEST_DIR").is_ok_and(|v| v == "1");
        if let Some(dir) = self.dir.take() {
            if keep {
                let p = dir.keep();
                eprintln!("harness[{}]: test dir kept: {}", self.name, p.display());
            }
        }
    }
}
