//! The real ModemManager on a private bus, driving the [`FakeModem`] through its test hook:
//! `ModemManager --test-session --test-enable --test-no-udev --no-auto-scan`, then
//! `org.freedesktop.ModemManager1.Test.SetProfile(id, "generic", ["abstract:<socket>"])`,
//! `Modem.Enable(true)`, and a wait until `Messaging.List` shows the messages.
//!
//! With `--test-session` ModemManager authorizes modem operations (Enable, Create, Store,
//! Delete) itself: no polkit needed. It still looks polkit up on the *system* bus, so the
//! rig points `DBUS_SYSTEM_BUS_ADDRESS` at its private bus too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::fake::{FakeModem, Stored};
use crate::bus::{Bus, BusOptions};
use crate::process::{self, Proc};
use crate::Result;

pub const MM_NAME: &str = "org.freedesktop.ModemManager1";
pub const MM_PATH: &str = "/org/freedesktop/ModemManager1";
const MESSAGING: &str = "org.freedesktop.ModemManager1.Modem.Messaging";
const SMS: &str = "org.freedesktop.ModemManager1.Sms";
const MM_BIN: &str = "/usr/sbin/ModemManager";

/// Timings of one start.
#[derive(Debug, Clone, Copy, Default)]
pub struct RigTimings {
    pub modem_manager_on_bus: Duration,
    pub modem_object: Duration,
    pub enabled: Duration,
    pub messages_listed: Duration,
}

pub struct ModemRig {
    root: PathBuf,
    dir: PathBuf,
    token: String,
    bus: Bus,
    conn: zbus::Connection,
    modem: FakeModem,
    mm: Option<Proc>,
    mm_starts: u32,
    modem_path: OwnedObjectPath,
    pub timings: RigTimings,
}

async fn call<R>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
) -> Result<R>
where
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    let reply = conn
        .call_method(Some(MM_NAME), path, Some(iface), method, body)
        .await?;
    Ok(reply.body().deserialize()?)
}

impl ModemRig {
    /// Starts a bus, the fake modem with the first `n_sms` test messages, and ModemManager;
    /// returns once the modem is enabled and `Messaging.List` shows `n_sms` messages.
    pub async fn start(root: &Path, dir: &Path, n_sms: usize) -> Result<ModemRig> {
        if !Path::new(MM_BIN).is_file() {
            return Err(format!("{MM_BIN} not found (apt-get install modemmanager)").into());
        }
        std::fs::create_dir_all(dir)?;
        let bus = Bus::start(root, &dir.join("b"), &BusOptions::default())?;
        let conn = bus.connect().await?;
        let token = crate::random_hex(8);
        let modem = FakeModem::start(&token, n_sms, Some(&dir.join("fake-modem.log")))?;
        let mut rig = ModemRig {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            token,
            bus,
            conn,
            modem,
            mm: None,
            mm_starts: 0,
            modem_path: OwnedObjectPath::try_from("/")?,
            timings: RigTimings::default(),
        };
        rig.start_modem_manager(n_sms).await?;
        Ok(rig)
    }

    /// The rig's bus: give it to clients as `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn bus_address(&self) -> &str {
        self.bus.address()
    }

    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    pub fn modem(&self) -> &FakeModem {
        &self.modem
    }

    /// The modem's object path (changes on every ModemManager start).
    pub fn modem_path(&self) -> &str {
        self.modem_path.as_str()
    }

    pub fn log_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..=self.mm_starts)
            .map(|n| self.dir.join(format!("ModemManager.{n}.log")))
            .collect();
        v.push(self.dir.join("fake-modem.log"));
        v
    }

    async fn start_modem_manager(&mut self, n_sms: usize) -> Result<()> {
        let t0 = Instant::now();
        self.mm_starts += 1;
        let log = self
            .dir
            .join(format!("ModemManager.{}.log", self.mm_starts));
        let (out, err) = process::log_file(&log)?;
        let mut cmd = process::clean_command(MM_BIN, &self.root);
        Bus::apply_env(&mut cmd, &self.dir.join("b"), self.bus.address());
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .args([
                "--test-session",
                "--test-enable",
                "--test-no-udev",
                "--no-auto-scan",
                "--test-no-suspend-resume",
                "--debug",
            ])
            .stdout(out)
            .stderr(err);
        let mut proc = Proc::spawn("ModemManager", &mut cmd)?;
        let fail = |what: &str, proc: &mut Proc| -> crate::Error {
            let exited = proc.try_exited();
            format!(
                "ModemManager: {what} (exited: {exited:?})\n{}",
                process::tail(&log, 3000)
            )
            .into()
        };
        let conn = self.conn.clone();
        let on_bus =
            process::poll_async(Duration::from_secs(30), Duration::from_millis(50), || {
                let conn = conn.clone();
                async move {
                    crate::bus::name_has_owner(&conn, MM_NAME)
                        .await
                        .ok()
                        .filter(|b| *b)
                }
            })
            .await;
        if on_bus.is_none() {
            return Err(fail("not on the bus after 30 s", &mut proc));
        }
        self.timings.modem_manager_on_bus = t0.elapsed();
        self.mm = Some(proc);

        let profile = format!("fake-{}", self.token);
        let port = self.modem.at_port().to_string();
        let _: () = call(&self.conn, MM_PATH, "org.freedesktop.ModemManager1.Test", "SetProfile", &(profile.as_str(), "generic", vec![port.as_str()]))
            .await
            .map_err(|e| format!("Test.SetProfile failed (ModemManager built without tests? needs --test-enable): {e}"))?;

        // the modem object (with Messaging) appears once initialized
        let conn = self.conn.clone();
        let path = process::poll_async(Duration::from_secs(60), Duration::from_millis(100), || {
            let conn = conn.clone();
            async move { modem_with_messaging(&conn).await.ok().flatten() }
        })
        .await;
        let Some(path) = path else {
            return Err(self.mm_fail("no modem object with Messaging after 60 s"));
        };
        self.modem_path = path;
        self.timings.modem_object = t0.elapsed();

        // enable (SMS are read from the modem while enabling)
        let t_init = Instant::now();
        loop {
            let state = self.modem_state().await?;
            if state >= 6 {
                break;
            }
            if state == 3 {
                let _: () = call(
                    &self.conn,
                    self.modem_path.as_str(),
                    "org.freedesktop.ModemManager1.Modem",
                    "Enable",
                    &(true,),
                )
                .await?;
                continue;
            }
            if t_init.elapsed() > Duration::from_secs(60) {
                return Err(self.mm_fail(&format!("modem stuck in state {state}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.timings.enabled = t0.elapsed();
        self.wait_for_messages(n_sms, Duration::from_secs(30))
            .await?;
        self.timings.messages_listed = t0.elapsed();
        Ok(())
    }

    fn mm_fail(&mut self, what: &str) -> crate::Error {
        let log = self
            .dir
            .join(format!("ModemManager.{}.log", self.mm_starts));
        format!("ModemManager: {what}\n{}", process::tail(&log, 3000)).into()
    }

    /// `Modem.State`.
    pub async fn modem_state(&self) -> Result<i32> {
        let v: OwnedValue = call(
            &self.conn,
            self.modem_path.as_str(),
            "org.freedesktop.DBus.Properties",
            "Get",
            &("org.freedesktop.ModemManager1.Modem", "State"),
        )
        .await?;
        Ok(i32::try_from(v)?)
    }

    /// Waits until `Messaging.List` shows at least `n` messages, none of them still
    /// arriving (State 2).
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<HashMap<String, OwnedValue>>> {
        let t0 = Instant::now();
        loop {
            let all = self.messages().await?;
            if all.len() >= n
                && all.iter().all(|p| {
                    p.get("State")
                        .and_then(|v| u32::try_from(v.try_clone().ok()?).ok())
                        != Some(2)
                })
            {
                return Ok(all);
            }
            if t0.elapsed() > timeout {
                return Err(format!(
                    "only {} of {n} SMS listed by ModemManager after {timeout:?}",
                    all.len()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `Messaging.List`.
    pub async fn sms_paths(&self) -> Result<Vec<OwnedObjectPath>> {
        call(&self.conn, self.modem_path.as_str(), MESSAGING, "List", &()).await
    }

    /// The `Sms` properties of every listed message (newest first, as listed).
    pub async fn messages(&self) -> Result<Vec<HashMap<String, OwnedValue>>> {
        let mut out = vec![];
        for p in self.sms_paths().await? {
            out.push(
                call(
                    &self.conn,
                    p.as_str(),
                    "org.freedesktop.DBus.Properties",
                    "GetAll",
                    &(SMS,),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Deletes every message through ModemManager (`Messaging.Delete`).
    pub async fn delete_all(&self) -> Result<usize> {
        let paths = self.sms_paths().await?;
        for p in &paths {
            let _: () = call(
                &self.conn,
                self.modem_path.as_str(),
                MESSAGING,
                "Delete",
                &(p,),
            )
            .await?;
        }
        Ok(paths.len())
    }

    /// A new incoming message; returns once ModemManager read every part and lists it
    /// complete.
    pub async fn deliver(&self, number: &str, text: &str) -> Result<()> {
        let before = self.sms_paths().await?.len();
        let (modem, number, text) = (&self.modem, number.to_string(), text.to_string());
        tokio::task::block_in_place(|| modem.deliver(&number, &text, Duration::from_secs(15)))?;
        self.wait_for_messages(before + 1, Duration::from_secs(15))
            .await?;
        Ok(())
    }

    /// What the fake modem's storage holds.
    pub fn stored(&self) -> Vec<Stored> {
        self.modem.stored()
    }

    /// Stops ModemManager and starts it again (new object paths), waiting for `n_sms`
    /// messages.
    pub async fn restart_modem_manager(&mut self, n_sms: usize) -> Result<()> {
        if let Some(mut p) = self.mm.take() {
            p.stop();
        }
        self.start_modem_manager(n_sms).await
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.mm.take() {
            p.stop();
        }
        self.modem.stop();
        self.bus.stop();
    }
}

impl Drop for ModemRig {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn modem_with_messaging(conn: &zbus::Connection) -> Result<Option<OwnedObjectPath>> {
    type Objects = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedValue>>>;
    let objs: Objects = call(
        conn,
        MM_PATH,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
        &(),
    )
    .await?;
    let mut paths: Vec<OwnedObjectPath> = objs
        .into_iter()
        .filter(|(_, i)| i.contains_key(MESSAGING))
        .map(|(p, _)| p)
        .collect();
    paths.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(paths.into_iter().next())
}
