//! A private session bus with evolution-data-server for tests.
//!
//! `TestBus::start()` runs `dbus-daemon` with its own config: the only service directory
//! holds copies of the EDS `.service` files (Sources, AddressBook, Calendar) from
//! `/usr/share/dbus-1/services`, and the bus (so every activated EDS process) runs in a
//! clean environment whose HOME and XDG directories lie in a temporary directory.
//! Dropping the bus kills `dbus-daemon`; EDS processes exit with their bus, and any that
//! remain (found by an environment marker) are terminated by PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The EDS factory whose absence makes EDS tests skip.
pub(crate) const FACTORY: &str = "/usr/libexec/evolution-addressbook-factory";
const SERVICE_DIR: &str = "/usr/share/dbus-1/services";
const MARKER: &str = "IMSYNC_TESTBUS_DIR";

pub(crate) struct TestBus {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    pub address: String,
}

impl TestBus {
    /// Starts a bus, or returns `None` (after printing why) if EDS is not installed.
    pub(crate) fn start() -> Option<TestBus> {
        if !Path::new(FACTORY).exists() {
            eprintln!("skipping: {FACTORY} is not installed (evolution-data-server)");
            return None;
        }
        // Short path: unix socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("imsync-eds-")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let root = dir.path().to_path_buf();
        for sub in ["home", "config", "data", "cache", "runtime", "services"] {
            std::fs::create_dir_all(root.join(sub)).expect("test bus directories");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("runtime"), std::fs::Permissions::from_mode(0o700))
            .expect("runtime dir mode");

        let mut copied = 0;
        for entry in std::fs::read_dir(SERVICE_DIR).expect("D-Bus service directory") {
            let path = entry.expect("service dir entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let wanted = ["Sources", "AddressBook", "Calendar"]
                .iter()
                .any(|s| name.starts_with(&format!("org.gnome.evolution.dataserver.{s}")));
            if wanted && name.ends_with(".service") {
                std::fs::copy(&path, root.join("services").join(&name))
                    .expect("copy .service file");
                copied += 1;
            }
        }
        assert!(copied >= 2, "EDS .service files missing in {SERVICE_DIR}");

        let socket = root.join("runtime/bus");
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="service_start_timeout">120000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
"#,
            socket = socket.display(),
            services = root.join("services").display()
        );
        std::fs::write(root.join("bus.conf"), config).expect("bus config");
        let log = std::fs::File::create(root.join("eds.log")).expect("log file");

        let d = |s: &str| root.join(s).display().to_string();
        let daemon = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg(format!("--config-file={}", root.join("bus.conf").display()))
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", d("home"))
            .env("XDG_CONFIG_HOME", d("config"))
            .env("XDG_DATA_HOME", d("data"))
            .env("XDG_CACHE_HOME", d("cache"))
            .env("XDG_RUNTIME_DIR", d("runtime"))
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("TZ", "UTC")
            .env("GSETTINGS_BACKEND", "memory")
            .env("GIO_USE_VFS", "local")
            .env("GIO_USE_VOLUME_MONITOR", "unix")
            .env("NO_AT_BRIDGE", "1")
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}", d("runtime/no-system-bus")),
            )
            .env(MARKER, root.display().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("dbus-daemon (apt-get install dbus-daemon)");
        let mut bus = TestBus {
            dir,
            daemon: Some(daemon),
            address: format!("unix:path={}", socket.display()),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Some(Ok(Some(status))) = bus.daemon.as_mut().map(|c| c.try_wait()) {
                panic!("dbus-daemon exited ({status}), see {}", bus.log().display());
            }
            assert!(
                Instant::now() < deadline,
                "dbus-daemon did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(bus)
    }

    /// A new connection to the bus.
    pub(crate) async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .expect("bus address")
            .build()
            .await
            .expect("connect to the test bus")
    }

    /// The temporary root (HOME, XDG dirs and `eds.log` are inside).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// XDG_DATA_HOME of the bus (EDS keeps books and photos below it).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.path().join("eds.log")
    }

    /// PIDs of processes started on this bus (they carry the environment marker).
    fn marked_pids(&self) -> Vec<u32> {
        let needle = format!("{MARKER}={}", self.dir.path().display());
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // EDS exits when its bus goes away; give it a moment, then end stragglers.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut pids = self.marked_pids();
        while !pids.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            pids = self.marked_pids();
        }
        for sig in ["-TERM", "-KILL"] {
            for pid in &pids {
                let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
            }
            if !pids.is_empty() {
                std::thread::sleep(Duration::from_millis(300));
                pids = self.marked_pids();
            }
        }
    }
}
