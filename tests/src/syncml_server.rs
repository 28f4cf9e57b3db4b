//! A real, third-party SyncML server: SyncEvolution 2.0's
//! `syncevo-http-server` + `syncevo-dbus-server`, on their own private bus,
//! HTTP on 127.0.0.1 on a port the OS picked, random credentials. Items are
//! stored by SyncEvolution's file backend, one file per item, in
//! `DIR/db/<database>/<n>`.
//!
//! The Debian http-server script needs the wrapper in
//! `tests/syncml-server/http-wrapper.py` (listen address, GET answer, auto
//! registration of client device IDs); it is embedded here and written into
//! the server dir at start.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bus::{Bus, BusOptions};
use crate::process::{self, Proc};
use crate::Result;

/// Marker on every process of one server: its directory.
pub const MARKER_SERVER: &str = "IMSYNC_HARNESS_SERVER";

const HTTP_WRAPPER: &str = include_str!("../syncml-server/http-wrapper.py");

pub const SYNCEVOLUTION: &str = "/usr/bin/syncevolution";
pub const SYNCEVO_HTTP_SERVER: &str = "/usr/bin/syncevo-http-server";
pub const SYNCEVO_DBUS_SERVER: &str = "/usr/libexec/syncevo-dbus-server";
pub const PYTHON: &str = "/usr/bin/python3";

/// Server databases: (name, storage format of the file backend, alias URI).
pub const DATABASES: &[(&str, &str, Option<&str>)] = &[
    ("contacts", "text/vcard", Some("addressbook")),
    ("calendar", "text/calendar", Some("events")),
    ("tasks", "text/calendar", None),
    ("notes", "text/plain", Some("memos")),
    ("vnotes", "raw/text/vcard", None),   // relabelled text/x-vnote 1.1 below
    ("sms", "raw/text/calendar", None),   // relabelled text/x-vmessage 1.1 below
    ("roster", "text/vcard", None),
];

/// SyncEvolution's file backend only knows a fixed list of MIME types; the
/// two raw datatypes (stored byte for byte) are relabelled for sms and
/// vnotes. Read from `$XDG_CONFIG_HOME/syncevolution-xml` after the system one.
const RAW_TYPES_XML: &str = r#"    <datatype name="raw-vcard" basetype="raw">
      <use fieldlist="Raw"/>
      <typestring>text/x-vnote</typestring>
      <versionstring>1.1</versionstring>
    </datatype>

    <datatype name="raw-calendar" basetype="raw">
      <use fieldlist="Raw"/>
      <typestring>text/x-vmessage</typestring>
      <versionstring>1.1</versionstring>
    </datatype>
"#;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub username: String,
    pub password: String,
    /// Per-session engine logs (about 7 KB per item): off unless
    /// `IMSYNC_TEST_SERVER_LOGS=1` or set here.
    pub session_logs: bool,
    /// Session log level when logs are on (1 errors .. 5 message dumps).
    pub loglevel: u32,
    /// Per database, the format the server marks as preferred (`Rx-Pref`) in
    /// its DevInf: SyncEvolution's `syncFormat` datastore property of every
    /// client's peer config (e.g. `("contacts", "text/x-vcard")`).
    pub sync_formats: Vec<(String, String)>,
    /// Also set `forceSyncFormat` (offer only the preferred format).
    pub force_sync_format: bool,
    /// The server's MaxMsgSize (SyncEvolution's `maxMsgSize` of every client's
    /// peer config; default 150000): a small one gives sessions of many messages.
    pub max_msg_size: Option<u32>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            username: crate::random_token("user", 12),
            password: crate::random_token("pw", 20),
            session_logs: std::env::var("IMSYNC_TEST_SERVER_LOGS").is_ok_and(|v| v == "1"),
            loglevel: std::env::var("IMSYNC_TEST_SERVER_LOGLEVEL").ok().and_then(|v| v.parse().ok()).unwrap_or(1),
            sync_formats: Vec::new(),
            force_sync_format: false,
            max_msg_size: None,
        }
    }
}

pub struct SyncmlServer {
    dir: PathBuf,
    url: String,
    port: u16,
    opts: ServerOptions,
    // stop order: http server, dbus server, bus
    http: Option<Proc>,
    dbus_server: Option<Proc>,
    bus: Option<Bus>,
    root: PathBuf,
    startup: Duration,
}

/// Ask the OS for a free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port on 127.0.0.1 that nothing listens on (for "server down" tests).
pub fn closed_port() -> Result<u16> {
    free_port()
}

/// GET `url` (plain HTTP, no proxy); returns the status code.
pub fn http_get_status(url: &str, timeout: Duration) -> Result<u16> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?.next().ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad HTTP answer: {head:?}"))?;
    Ok(code)
}

impl SyncmlServer {
    /// Start a server in `dir` (created) with random credentials.
    pub fn start(root: &Path, dir: &Path) -> Result<SyncmlServer> {
        Self::start_with(root, dir, ServerOptions::default())
    }

    pub fn start_with(root: &Path, dir: &Path, opts: ServerOptions) -> Result<SyncmlServer> {
        if opts.username == opts.password {
            return Err("username and password must differ".into());
        }
        for f in [SYNCEVOLUTION, SYNCEVO_HTTP_SERVER, SYNCEVO_DBUS_SERVER, PYTHON] {
            if !Path::new(f).exists() {
                return Err(format!("{f} missing: apt-get install syncevolution syncevolution-http python3-twisted (see .ci/run)").into());
            }
        }
        let t0 = Instant::now();
        fs::create_dir_all(dir.join("run"))?;
        fs::create_dir_all(dir.join("logs"))?;
        let dir = dir.canonicalize()?;
        fs::write(dir.join("run/credentials"), format!("{}\n{}\n", opts.username, opts.password))?;
        fs::write(dir.join("run/http-wrapper.py"), HTTP_WRAPPER)?;
        // the bus's own dirs (HOME, XDG_*) are SyncEvolution's HOME etc.
        let bus = Bus::start(root, &dir.join("bus"), &BusOptions::default())?;
        let mut srv = SyncmlServer {
            dir: dir.clone(),
            url: String::new(),
            port: 0,
            opts,
            http: None,
            dbus_server: None,
            bus: Some(bus),
            root: root.to_path_buf(),
            startup: Duration::ZERO,
        };
        srv.configure()?;
        srv.start_dbus_server()?;
        // a free port can be taken between asking and binding: retry
        let mut last = String::new();
        for _ in 0..5 {
            match srv.start_http() {
                Ok(()) => {
                    srv.startup = t0.elapsed();
                    fs::write(dir.join("startup-ms"), format!("{}\n", srv.startup.as_millis()))?;
                    return Ok(srv);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("SyncML server did not start: {last}").into())
    }

    fn bus(&self) -> &Bus {
        self.bus.as_ref().expect("bus")
    }

    fn command(&self, prog: &str) -> std::process::Command {
        let mut c = process::clean_command(prog, &self.root);
        Bus::apply_env(&mut c, self.bus().dir(), self.bus().address());
        c.env(MARKER_SERVER, &self.dir);
        c
    }

    fn syncevolution(&self, args: &[&str]) -> Result<()> {
        let out = self.command(SYNCEVOLUTION).arg("--daemon=no").arg("--configure").args(args).output()?;
        if !out.status.success() {
            return Err(format!("syncevolution --configure {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(())
    }

    /// `syncevolution --configure` of the server context `@server`: one file
    /// backend datastore per database, session logs off.
    fn configure(&self) -> Result<()> {
        let xml = self.bus().dir().join("config/syncevolution-xml/datatypes");
        fs::create_dir_all(&xml)?;
        fs::write(xml.join("42-raw-types.xml"), RAW_TYPES_XML)?;
        for (db, format, _) in DATABASES {
            let dbdir = self.dir.join("db").join(db);
            fs::create_dir_all(&dbdir)?;
            self.syncevolution(&[
                "--keyring=no", // passwords stay in the config files, never a keyring prompt
                "--datastore-property",
                "backend=file",
                "--datastore-property",
                &format!("databaseFormat={format}"),
                "--datastore-property",
                &format!("database=file://{}", dbdir.display()),
                "@server",
                db,
            ])?;
        }
        let logdir = if self.opts.session_logs { self.dir.join("logs/sessions").display().to_string() } else { "none".into() };
        self.syncevolution(&["--sync-property", &format!("logdir={logdir}"), "--sync-property", "maxlogdirs=20", "@server"])
    }

    fn start_dbus_server(&mut self) -> Result<()> {
        let log = self.dir.join("logs/syncevo-dbus-server.log");
        let (out, err) = process::log_file(&log)?;
        let mut cmd = self.command(SYNCEVO_DBUS_SERVER);
        cmd.args(["--duration=unlimited", "--verbosity=2", "--dbus-verbosity=1", "--stdout", "--no-syslog"])
            .stdout(out)
            .stderr(err);
        let mut p = Proc::spawn("syncevo-dbus-server", &mut cmd)?;
        let ready = process::poll(Duration::from_secs(60), Duration::from_millis(50), || {
            if fs::read_to_string(&log).is_ok_and(|s| s.contains("ready to run")) {
                return Some(true);
            }
            p.try_exited().map(|_| false)
        });
        if ready != Some(true) {
            return Err(format!("syncevo-dbus-server did not start\n{}", process::tail(&log, 3000)).into());
        }
        self.dbus_server = Some(p);
        Ok(())
    }

    fn start_http(&mut self) -> Result<()> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}/syncevolution");
        let log = self.dir.join("logs/http-server.log");
        let (out, err) = process::log_file(&log)?;
        let dbs: Vec<&str> = DATABASES.iter().map(|d| d.0).collect();
        let aliases: Vec<String> = DATABASES.iter().filter_map(|(d, _, a)| a.map(|a| format!("{d}={a}"))).collect();
        let mut cmd = self.command(PYTHON);
        cmd.arg(self.dir.join("run/http-wrapper.py"))
            .arg("--debug")
            .arg(&url)
            .env("SYNCML_SERVER_DIR", &self.dir)
            .env("SYNCML_DATABASES", dbs.join(" "))
            .env("SYNCML_ALIASES", aliases.join(" "))
            .env("SYNCML_LOGLEVEL", self.opts.loglevel.to_string())
            .env("SYNCML_LISTEN", "127.0.0.1")
            .env("SYNCML_SYNC_FORMATS", self.opts.sync_formats.iter().map(|(d, f)| format!("{d}={f}")).collect::<Vec<_>>().join(" "))
            .env("SYNCML_FORCE_SYNC_FORMAT", if self.opts.force_sync_format { "1" } else { "0" })
            .env("SYNCML_MAXMSGSIZE", self.opts.max_msg_size.map_or_else(|| "150000".to_string(), |m| m.to_string()))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(out)
            .stderr(err);
        let mut p = Proc::spawn("syncevo-http-server", &mut cmd)?;
        let ok = process::poll(Duration::from_secs(60), Duration::from_millis(50), || {
            if http_get_status(&url, Duration::from_secs(2)).is_ok_and(|c| c == 200) {
                return Some(true);
            }
            p.try_exited().map(|_| false)
        });
        if ok != Some(true) {
            return Err(format!("syncevo-http-server did not answer on {url}\n{}", process::tail(&log, 3000)).into());
        }
        fs::write(self.dir.join("run/url"), format!("{url}\n"))?;
        self.http = Some(p);
        self.url = url;
        self.port = port;
        Ok(())
    }

    /// SyncML URL, e.g. `http://127.0.0.1:43121/syncevolution`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn username(&self) -> &str {
        &self.opts.username
    }

    pub fn password(&self) -> &str {
        &self.opts.password
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long `start` took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Directory holding the items of database `db`.
    pub fn db_dir(&self, db: &str) -> PathBuf {
        self.dir.join("db").join(db)
    }

    /// The items stored in database `db`: (file name, exact bytes), sorted by
    /// the numeric file name (the server's LUID).
    pub fn items(&self, db: &str) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = match fs::read_dir(self.db_dir(db)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    fs::read(e.path()).ok().map(|b| (name, b))
                })
                .collect(),
            Err(_) => vec![],
        };
        out.sort_by_key(|(n, _)| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
        out
    }

    pub fn item_count(&self, db: &str) -> usize {
        self.items(db).len()
    }

    /// Client device IDs that contacted the server so far.
    pub fn clients(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("run/clients"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Log files of the server processes.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        vec![
            self.dir.join("logs/http-server.log"),
            self.dir.join("logs/syncevo-dbus-server.log"),
            self.dir.join("bus/bus.log"),
        ]
    }

    /// Stop everything this server started (by PID), then stragglers
    /// (per-session syncevo-dbus-helper processes) by marker.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.http.take() {
            p.stop();
        }
        if let Some(mut p) = self.dbus_server.take() {
            p.stop();
        }
        if let Some(mut b) = self.bus.take() {
            b.stop();
        }
        // per-session syncevo-dbus-helper processes, syncevolution --configure runs
        let left = process::kill_with_env(MARKER_SERVER, &self.dir.display().to_string());
        if !left.is_empty() {
            eprintln!("harness: ended {left:?} left over from the SyncML server in {}", self.dir.display());
        }
    }
}

impl Drop for SyncmlServer {
    fn drop(&mut self) {
        self.stop();
    }
}
