//! A private `dbus-daemon` (session type) per phone / per server, in a clean
//! environment: HOME and XDG dirs inside its own directory, no access to the
//! host's session or system bus, and only the services we choose activatable.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::process::{self, Proc};
use crate::Result;

/// The evolution-data-server services the phone bus may activate. Nothing
/// else (dconf, gnome-keyring, goa, gvfs, the GTK user prompter) is.
pub const EDS_SERVICES: &[&str] = &[
    "org.gnome.evolution.dataserver.Sources5",
    "org.gnome.evolution.dataserver.AddressBook10",
    "org.gnome.evolution.dataserver.Calendar8",
];

/// Longest usable unix socket path (sun_path is 108 bytes incl. NUL).
pub const MAX_SOCKET_PATH: usize = 107;

pub struct Bus {
    dir: PathBuf,
    address: String,
    log: PathBuf,
    proc: Proc,
}

#[derive(Default, Clone)]
pub struct BusOptions {
    /// Well-known names whose installed `.service` files are copied into
    /// the bus's private service directory.
    pub activatable: Vec<String>,
    /// Extra environment for the bus and everything it activates.
    pub env: Vec<(String, String)>,
}

impl BusOptions {
    /// A bus on which EDS can be activated.
    pub fn eds() -> Self {
        BusOptions { activatable: EDS_SERVICES.iter().map(|s| s.to_string()).collect(), env: vec![] }
    }
}

/// Path of the installed D-Bus service file for `name`.
pub fn find_service_file(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var("XDG_DATA_DIRS").unwrap_or_default();
    let found = dirs
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/local/share", "/usr/share"])
        .map(|d| Path::new(d).join("dbus-1/services").join(format!("{name}.service")))
        .find(|p| p.is_file());
    found
}

impl Bus {
    /// Start a bus whose state (HOME, XDG dirs, socket, log) lives in `dir`.
    /// `root` is the test's root dir (process marker).
    pub fn start(root: &Path, dir: &Path, opts: &BusOptions) -> Result<Bus> {
        let t0 = std::time::Instant::now();
        for sub in ["home", "config", "data", "cache", "state", "runtime", "services"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("runtime"), fs::Permissions::from_mode(0o700))?;
        let sock = dir.join("runtime/bus");
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!("socket path too long ({} bytes > {MAX_SOCKET_PATH}): {}", sock.as_os_str().len(), sock.display()).into());
        }
        let address = format!("unix:path={}", sock.display());
        for name in &opts.activatable {
            let src = find_service_file(name)
                .ok_or_else(|| format!("{name}.service not found in /usr/share/dbus-1/services: is the package installed? (see .ci/run)"))?;
            fs::copy(&src, dir.join("services").join(format!("{name}.service")))?;
        }
        let conf = dir.join("bus.conf");
        fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <!-- any user may connect (the socket is in a 0700 directory: only a test
         that opens the way lets another user in, e.g. dbus_input's AccessDenied check) -->
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <!-- without this line every reply is rejected ("Rejected receive message") -->
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="service_start_timeout">120000</limit>
  <limit name="auth_timeout">240000</limit>
  <limit name="max_completed_connections">100000</limit>
  <limit name="max_incomplete_connections">10000</limit>
  <limit name="max_connections_per_user">100000</limit>
  <limit name="max_names_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
"#,
                sock = sock.display(),
                services = dir.join("services").display()
            ),
        )?;
        let log = dir.join("bus.log");
        let (_, err) = process::log_file(&log)?;
        let mut cmd = process::clean_command(
            process::which("dbus-daemon").ok_or("dbus-daemon not found (apt-get install dbus-daemon)")?,
            root,
        );
        Self::apply_env(&mut cmd, dir, &address);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        // inherited by every service the bus activates (EDS factories, ...)
        cmd.env(process::MARKER_BUS, dir);
        cmd.arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::piped())
            .stderr(err);
        let mut proc = Proc::spawn("dbus-daemon", &mut cmd)?.with_grace(Duration::from_secs(3));
        // the address is printed once the socket listens
        let out = proc.child_mut().and_then(|c| c.stdout.take()).ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        if line.trim().is_empty() {
            return Err(format!("dbus-daemon did not start\n{}", process::tail(&log, 2000)).into());
        }
        let bus = Bus { dir: dir.to_path_buf(), address, log, proc };
        fs::write(dir.join("startup-ms"), format!("{}\n", t0.elapsed().as_millis()))?;
        Ok(bus)
    }

    /// The clean environment of the bus (also used for processes that should
    /// look like they run in the same session, e.g. gnome-keyring).
    pub fn apply_env(cmd: &mut std::process::Command, dir: &Path, address: &str) {
        cmd.env("HOME", dir.join("home"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("XDG_RUNTIME_DIR", dir.join("runtime"))
            .env("GSETTINGS_BACKEND", "memory")
            .env("GIO_USE_VFS", "local")
            .env("GIO_USE_VOLUME_MONITOR", "unix")
            .env("NO_AT_BRIDGE", "1")
            .env("DBUS_SESSION_BUS_ADDRESS", address)
            .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", dir.join("runtime/no-system-bus").display()));
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// A new zbus connection to this bus.
    pub async fn connect(&self) -> Result<zbus::Connection> {
        Ok(zbus::connection::Builder::address(self.address.as_str())?.build().await?)
    }

    /// Stop the bus (every GDBus service on it exits by itself then), then
    /// end whatever it activated and is still running.
    pub fn stop(&mut self) {
        if self.proc.pid() == 0 {
            return;
        }
        self.proc.stop();
        let left = process::kill_with_env(process::MARKER_BUS, &self.dir.display().to_string());
        if !left.is_empty() {
            eprintln!("harness: ended {left:?} left over from the bus in {}", self.dir.display());
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `org.freedesktop.DBus` helpers.
pub async fn name_owner_pid(conn: &zbus::Connection, name: &str) -> Result<Option<u32>> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let bus_name: zbus::names::BusName = name.try_into()?;
    if !dbus.name_has_owner(name.try_into()?).await? {
        return Ok(None);
    }
    Ok(Some(dbus.get_connection_unix_process_id(bus_name).await?))
}

pub async fn name_has_owner(conn: &zbus::Connection, name: &str) -> Result<bool> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    Ok(dbus.name_has_owner(name.try_into()?).await?)
}
