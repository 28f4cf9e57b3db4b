//! gnome-keyring as Secret Service provider on a phone bus (optional).
//!
//! Started with `--foreground --unlock --components=secrets`, the keyring
//! password on stdin (all of stdin is the password; EOF ends it). Ready when
//! its stdout reaches EOF: by then the login keyring is unlocked and
//! `org.freedesktop.secrets` is owned.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::bus::Bus;
use crate::process::{self, Proc};
use crate::Result;

pub const SECRETS_NAME: &str = "org.freedesktop.secrets";
const SECRETS_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";

pub struct Keyring {
    proc: Proc,
    keyring_password: String,
}

impl Keyring {
    /// Start gnome-keyring on `bus`, with its data in the bus's dirs.
    pub fn start(root: &std::path::Path, bus: &Bus) -> Result<Keyring> {
        let keyring_password = crate::random_token("kr", 24);
        let log = bus.dir().join("gnome-keyring.log");
        let (_, err) = process::log_file(&log)?;
        let mut cmd = process::clean_command(
            process::which("gnome-keyring-daemon").ok_or("gnome-keyring-daemon not found (apt-get install gnome-keyring)")?,
            root,
        );
        Bus::apply_env(&mut cmd, bus.dir(), bus.address());
        cmd.args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err); // must not be the stdout pipe, or EOF never comes
        let mut proc = Proc::spawn("gnome-keyring-daemon", &mut cmd)?.with_grace(Duration::from_secs(3));
        let child = proc.child_mut().ok_or("no child")?;
        child.stdin.take().ok_or("no stdin")?.write_all(keyring_password.as_bytes())?; // dropped: EOF
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(out.read_to_end(&mut Vec::new()));
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(_)) => {}
            r => return Err(format!("gnome-keyring not ready: {r:?}\n{}", process::tail(&log, 2000)).into()),
        }
        Ok(Keyring { proc, keyring_password })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The (random) password of the login keyring.
    pub fn keyring_password(&self) -> &str {
        &self.keyring_password
    }

    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

/// One stored secret, as found through the Secret Service API.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    pub path: String,
    pub attributes: HashMap<String, String>,
    pub label: String,
    pub secret: Vec<u8>,
    pub locked: bool,
}

/// Search the Secret Service on `conn` by attributes (like
/// `secret-tool search --all K V ...`) and read the secrets with a plain
/// session opened on that same connection.
pub async fn search_secrets(conn: &zbus::Connection, attrs: &[(&str, &str)]) -> Result<Vec<StoredSecret>> {
    let svc = zbus::Proxy::new(conn, SECRETS_NAME, SECRETS_PATH, SERVICE_IFACE).await?;
    let attrs: HashMap<&str, &str> = attrs.iter().copied().collect();
    let (unlocked, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = svc.call("SearchItems", &(attrs,)).await?;
    let (_, session): (OwnedValue, OwnedObjectPath) = svc.call("OpenSession", &("plain", Value::from(""))).await?;
    let secrets: HashMap<OwnedObjectPath, (OwnedObjectPath, Vec<u8>, Vec<u8>, String)> =
        svc.call("GetSecrets", &(&unlocked, &session)).await?;
    let mut out = Vec::new();
    for (path, is_locked) in unlocked.iter().map(|p| (p, false)).chain(locked.iter().map(|p| (p, true))) {
        let item = zbus::proxy::Builder::<zbus::Proxy>::new(conn)
            .destination(SECRETS_NAME)?
            .path(path.clone())?
            .interface("org.freedesktop.Secret.Item")?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let attributes: HashMap<String, String> = item.get_property("Attributes").await?;
        let label: String = item.get_property("Label").await?;
        out.push(StoredSecret {
            path: path.to_string(),
            attributes,
            label,
            secret: secrets.get(path).map(|s| s.2.clone()).unwrap_or_default(),
            locked: is_locked,
        });
    }
    Ok(out)
}
