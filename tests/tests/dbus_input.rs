//! Every method of org.imsync.Sync1 and org.imsync.Job1 called with bad input:
//! wrong types, missing and unknown keys, 1 MB strings, bad values, unknown
//! objects and methods, calls from a second client while a job runs, Cancel()
//! on a finished job. Each must be answered with a typed `org.imsync.Error.*`
//! (or the bus's own `org.freedesktop.DBus.Error.*` where zbus refuses the
//! signature or the object), and the daemon must still serve afterwards.
//!
//! Invalid UTF-8 cannot be sent: zbus refuses to marshal it and dbus-daemon
//! drops a connection that sends it, before the service sees anything.
//!
//! Also: a client of another Unix user (uid 65534, through `setpriv`) is
//! refused with `org.imsync.Error.AccessDenied`, and the state files are
//! private (0600 files, 0700 directories).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use harness::fault_proxy::{At, Fault, FaultKind, FaultProxy};
use harness::hostile::HostileServer;
use harness::sync1::{self, Sync1};
use harness::{EnvOptions, TestEnv};
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::DBusError;

fn err_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, msg, _) => format!("{name}: {}", msg.as_deref().unwrap_or("").chars().take(120).collect::<String>()),
        zbus::Error::FDO(f) => format!("{}: {}", f.name(), f.description().unwrap_or("").chars().take(120).collect::<String>()),
        other => format!("(not a D-Bus error) {other}"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    Ok,
    /// One of these error name prefixes.
    Err(&'static [&'static str]),
    /// Success or a typed error.
    OkOrTyped,
}

const IMSYNC: &[&str] = &["org.imsync.Error."];
const INVALID: &[&str] = &["org.imsync.Error.InvalidArgs"];
/// A signature mismatch is refused by zbus before the method runs, with its own
/// error name (`org.freedesktop.zbus.Error: Signature mismatch ...`).
const SIGNATURE: &[&str] = &["org.freedesktop.DBus.Error.InvalidArgs", "org.freedesktop.zbus.Error", "org.imsync.Error.InvalidArgs"];

struct Matrix {
    rows: Vec<String>,
    bad: Vec<String>,
}

impl Matrix {
    fn check(&mut self, what: &str, r: Result<String, zbus::Error>, expect: Expect) {
        let got = match &r {
            Ok(v) => format!("ok {}", v.chars().take(80).collect::<String>()),
            Err(e) => err_name(e),
        };
        let fine = match (expect, &r) {
            (Expect::Ok, Ok(_)) | (Expect::OkOrTyped, Ok(_)) => true,
            (Expect::Err(p), Err(e)) => {
                let n = err_name(e);
                p.iter().any(|p| n.starts_with(p))
            }
            (Expect::OkOrTyped, Err(e)) => err_name(e).starts_with("org.imsync.Error."),
            _ => false,
        };
        if !fine {
            self.bad.push(format!("{what}: expected {expect:?}, got {got}"));
        }
        self.rows.push(format!("| {what} | {got} |"));
    }
}

fn big(n: usize) -> String {
    "x".repeat(n)
}

async fn call(sync: &Sync1, method: &str, body: &(impl serde::Serialize + zbus::zvariant::DynamicType)) -> Result<String, zbus::Error> {
    let m = sync.proxy().call_method(method, body).await?;
    Ok(format!("{:?}", m.body().signature()))
}

fn dict<'a>(pairs: Vec<(&'a str, Value<'a>)>) -> HashMap<&'a str, Value<'a>> {
    pairs.into_iter().collect()
}

async fn alive(env: &mut TestEnv, sync: &Sync1, m: &mut Matrix, after: &str) {
    if !env.phone.daemon.is_running() {
        m.bad.push(format!("daemon died after {after}\n{}", env.daemon_log_tail()));
        env.phone.daemon.start().await.unwrap();
        return;
    }
    if let Err(e) = sync.history(1).await {
        m.bad.push(format!("daemon does not serve after {after}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_with_bad_input_gets_a_typed_error_and_the_daemon_keeps_serving() {
    let opts = EnvOptions { server: false, ..EnvOptions::default() };
    let mut env = TestEnv::with_options("dbus-input", opts).await.unwrap();
    env.phone.seed(&env.contacts(3)).await.unwrap();
    let srv = HostileServer::start().unwrap();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", srv.port())).unwrap();
    let url = proxy.url_for(srv.url());
    let pw = harness::random_token("pw", 20);
    env.remember_secret("dbus-user", &pw);
    let sync = env.phone.sync1().await.unwrap();
    let mut m = Matrix { rows: vec![], bad: vec![] };
    let mb = big(1024 * 1024);

    // --- before any account
    m.check("GetAccount() unconfigured", call(&sync, "GetAccount", &()).await, Expect::Err(&["org.imsync.Error.NotConfigured"]));
    m.check("Backup() unconfigured", call(&sync, "Backup", &()).await, Expect::Err(&["org.imsync.Error.NotConfigured"]));
    m.check("Restore([]) unconfigured", call(&sync, "Restore", &(Vec::<String>::new(),)).await, Expect::Err(&["org.imsync.Error.NotConfigured"]));
    m.check("BackupWith({}) unconfigured", call(&sync, "BackupWith", &(dict(vec![]),)).await, Expect::Err(&["org.imsync.Error.NotConfigured"]));
    m.check("RestoreWith({}) unconfigured", call(&sync, "RestoreWith", &(dict(vec![]),)).await, Expect::Err(&["org.imsync.Error.NotConfigured"]));
    m.check("GetHistory(10) empty", call(&sync, "GetHistory", &(10u32,)).await, Expect::Ok);
    alive(&mut env, &sync, &mut m, "unconfigured calls").await;

    // --- SetAccount
    let cases: Vec<(&str, HashMap<&str, Value>, Expect)> = vec![
        ("SetAccount({})", dict(vec![]), Expect::Err(IMSYNC)),
        ("SetAccount(server_url: u)", dict(vec![("server_url", Value::U32(5))]), Expect::Err(INVALID)),
        ("SetAccount(contacts.enabled: s)", dict(vec![("contacts.enabled", Value::from("yes"))]), Expect::Err(INVALID)),
        ("SetAccount(unknown key)", dict(vec![("bogus_key", Value::from("x"))]), Expect::Err(INVALID)),
        ("SetAccount(server_url ftp)", dict(vec![("server_url", Value::from("ftp://example.org/"))]), Expect::Err(INVALID)),
        ("SetAccount(server_url 1 MB)", dict(vec![("server_url", Value::from(format!("http://{mb}")))]), Expect::Err(INVALID)),
        ("SetAccount(im_id 1 MB)", dict(vec![("protocol", Value::from("xmpp")), ("im_id", Value::from(mb.as_str()))]), Expect::Err(IMSYNC)),
        ("SetAccount(protocol without im_id)", dict(vec![("protocol", Value::from("xmpp"))]), Expect::Err(IMSYNC)),
        ("SetAccount(contacts.mode bad)", dict(vec![("contacts.mode", Value::from("sideways"))]), Expect::Err(INVALID)),
        ("SetAccount(server_cert_sha256 bad)", dict(vec![("server_cert_sha256", Value::from("zz"))]), Expect::Err(INVALID)),
        ("SetAccount(unknown class)", dict(vec![("nonsense.enabled", Value::Bool(true))]), Expect::Err(INVALID)),
        ("SetAccount(username: as)", dict(vec![("username", Value::from(vec!["a", "b"]))]), Expect::Err(INVALID)),
        ("SetAccount(display_name 1 MB)", dict(vec![("protocol", Value::from("xmpp")), ("im_id", Value::from("big@example.org")), ("display_name", Value::from(mb.as_str()))]), Expect::Err(IMSYNC)),
    ];
    for (what, d, expect) in cases {
        let r = call(&sync, "SetAccount", &(d,)).await;
        m.check(what, r, expect);
        alive(&mut env, &sync, &mut m, what).await;
    }
    m.check("SetAccount(u)", call(&sync, "SetAccount", &(7u32,)).await, Expect::Err(SIGNATURE));
    m.check("SetAccount(a{ss})", call(&sync, "SetAccount", &(HashMap::from([("server_url", "http://x/")]),)).await, Expect::Err(SIGNATURE));
    m.check("SetAccount() no args", call(&sync, "SetAccount", &()).await, Expect::Err(SIGNATURE));
    // a real account (with a 1 MB password: stored, never logged)
    let mut acct = sync1::contacts_account(&url, "dbus-user", &pw);
    m.check("SetAccount(valid)", sync.set_account(&acct).await.map(|_| String::new()), Expect::Ok);
    acct.insert("password".into(), sync1::s(&mb));
    m.check("SetAccount(password 1 MB)", sync.set_account(&acct).await.map(|_| String::new()), Expect::OkOrTyped);
    acct.insert("password".into(), sync1::s(&pw));
    m.check("SetAccount(valid again)", sync.set_account(&acct).await.map(|_| String::new()), Expect::Ok);
    m.check("GetAccount()", call(&sync, "GetAccount", &()).await, Expect::Ok);
    alive(&mut env, &sync, &mut m, "SetAccount").await;

    // --- GetHistory, Restore, BackupWith, RestoreWith
    m.check("GetHistory(u32::MAX)", call(&sync, "GetHistory", &(u32::MAX,)).await, Expect::Ok);
    m.check("GetHistory(s)", call(&sync, "GetHistory", &("ten",)).await, Expect::Err(SIGNATURE));
    m.check("GetHistory()", call(&sync, "GetHistory", &()).await, Expect::Err(SIGNATURE));
    m.check("Restore([nonsense])", call(&sync, "Restore", &(vec!["nonsense"],)).await, Expect::Err(INVALID));
    m.check("Restore([1 MB])", call(&sync, "Restore", &(vec![mb.as_str()],)).await, Expect::Err(INVALID));
    m.check("Restore(u)", call(&sync, "Restore", &(1u32,)).await, Expect::Err(SIGNATURE));
    let with_cases: Vec<(&str, &str, HashMap<&str, Value>, Expect)> = vec![
        ("BackupWith(classes: s)", "BackupWith", dict(vec![("classes", Value::from("contacts"))]), Expect::Err(INVALID)),
        ("BackupWith(unknown account)", "BackupWith", dict(vec![("account", Value::from("xmpp:nobody@example.org"))]), Expect::Err(&["org.imsync.Error.NoSuchAccount"])),
        ("BackupWith(account 1 MB)", "BackupWith", dict(vec![("account", Value::from(mb.as_str()))]), Expect::Err(&["org.imsync.Error.NoSuchAccount", "org.imsync.Error.InvalidArgs"])),
        ("BackupWith(unknown key)", "BackupWith", dict(vec![("bogus", Value::Bool(true))]), Expect::Err(INVALID)),
        ("BackupWith(allow_mass_delete: s)", "BackupWith", dict(vec![("allow_mass_delete", Value::from("yes"))]), Expect::Err(INVALID)),
        ("BackupWith(classes: [nonsense])", "BackupWith", dict(vec![("classes", Value::from(vec!["nonsense"]))]), Expect::Err(INVALID)),
        ("RestoreWith(mode destroy)", "RestoreWith", dict(vec![("mode", Value::from("destroy"))]), Expect::Err(INVALID)),
        ("RestoreWith(mode: u)", "RestoreWith", dict(vec![("mode", Value::U32(1))]), Expect::Err(INVALID)),
        ("RestoreWith(classes with 1 MB)", "RestoreWith", dict(vec![("classes", Value::from(vec!["sms", mb.as_str()]))]), Expect::Err(INVALID)),
        ("RestoreWith(unknown key)", "RestoreWith", dict(vec![("bogus", Value::from("x"))]), Expect::Err(INVALID)),
    ];
    for (what, method, d, expect) in with_cases {
        let r = call(&sync, method, &(d,)).await;
        m.check(what, r, expect);
        alive(&mut env, &sync, &mut m, what).await;
    }
    m.check("Frobnicate() (unknown method)", call(&sync, "Frobnicate", &()).await, Expect::Err(&["org.freedesktop.DBus.Error.UnknownMethod"]));
    for path in ["/org/imsync/Sync1/Job/999999", "/org/imsync/Sync1/Job/abc", "/org/imsync/Nothing"] {
        let job = sync.job(path).await.unwrap();
        let r = job.call_method("Cancel", &()).await.map(|_| String::new());
        m.check(&format!("Cancel() on {path}"), r, Expect::Err(&["org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.UnknownInterface"]));
    }
    alive(&mut env, &sync, &mut m, "bad paths").await;

    // --- a job that runs for a while (the proxy holds its first message 4 s)
    proxy.arm(Fault { at: At::Msg(1), kind: FaultKind::Delay(Duration::from_secs(4)) });
    let conn2 = env.phone.bus.connect().await.unwrap();
    let other = Sync1::new(&conn2).await.unwrap();
    let watcher = harness::JobWatcher::new(sync.connection()).await.unwrap();
    let job: OwnedObjectPath = sync.backup().await.expect("Backup");
    let again = other.backup().await.map(|p| p.to_string());
    m.check("second client: Backup() while it runs", again.clone(), Expect::Ok);
    if again.as_deref().ok() != Some(job.as_str()) {
        m.bad.push(format!("second client's Backup() returned {again:?}, not the running {job}"));
    }
    m.check("second client: Restore([]) while a backup runs", call(&other, "Restore", &(Vec::<String>::new(),)).await, Expect::Err(&["org.imsync.Error.Busy"]));
    m.check("second client: SetAccount(valid) while a backup runs", other.set_account(&sync1::contacts_account(&url, "dbus-user", &pw)).await.map(|_| String::new()), Expect::OkOrTyped);
    m.check("second client: GetHistory(5) while a backup runs", call(&other, "GetHistory", &(5u32,)).await, Expect::Ok);
    let job_b = other.job(job.as_str()).await.unwrap();
    m.check("second client: GetHistory(5) again", call(&other, "GetHistory", &(5u32,)).await, Expect::Ok);
    m.check("second client: Cancel() while it runs", job_b.call_method("Cancel", &()).await.map(|_| String::new()), Expect::Ok);
    let o = sync.wait_job(&watcher, job.as_str(), Duration::from_secs(60)).await.unwrap();
    m.rows.push(format!("| the cancelled job | {} {} |", o.state, o.error));
    if o.state != "cancelled" {
        m.bad.push(format!("the job cancelled while running ended {} {}", o.state, o.error));
    }
    m.check("Cancel() on the finished job", job_b.call_method("Cancel", &()).await.map(|_| String::new()), Expect::Err(&["org.imsync.Error.NotRunning"]));
    m.check("Cancel() again", job_b.call_method("Cancel", &()).await.map(|_| String::new()), Expect::Err(&["org.imsync.Error.NotRunning"]));
    // zbus does not check the arguments of a method that takes none: a stray
    // argument is ignored (then NotRunning, as above)
    m.check("Cancel(s) (stray argument)", job_b.call_method("Cancel", &("now",)).await.map(|_| String::new()), Expect::Err(&["org.imsync.Error.NotRunning", "org.freedesktop.zbus.Error", "org.freedesktop.DBus.Error.InvalidArgs"]));
    alive(&mut env, &sync, &mut m, "job calls").await;
    // and a normal backup still works
    proxy.disarm();
    let o = sync.run_backup(Duration::from_secs(60)).await.unwrap();
    m.rows.push(format!("| Backup() afterwards | {} {} |", o.state, o.error));
    if o.state != "succeeded" {
        m.bad.push(format!("backup afterwards: {} {}\n{}", o.state, o.error, env.daemon_log_tail()));
    }

    // --- another Unix user on the same bus: open the way to the socket for it
    // (the test dirs are 0700), the bus policy accepts any user
    let client = env.phone.bus.address().to_string();
    let socket = std::path::PathBuf::from(client.strip_prefix("unix:path=").expect("unix:path= bus address"));
    let mut opened = vec![];
    let mut dir = socket.parent();
    while let Some(d) = dir {
        if !d.starts_with(env.root()) {
            break;
        }
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o001)).unwrap();
        opened.push((d.to_path_buf(), mode));
        dir = d.parent();
    }
    let smode = std::fs::metadata(&socket).unwrap().permissions().mode();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(smode | 0o006)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg("dbus-send")
        .args([
            &format!("--bus={client}"),
            "--print-reply",
            "--dest=org.imsync.Sync1",
            "/org/imsync/Sync1",
            "org.imsync.Sync1.GetHistory",
            "uint32:1",
        ])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    m.rows.push(format!("| GetHistory(1) as uid 65534 | {} |", stderr.trim().replace('\n', " ")));
    if !stderr.contains("org.imsync.Error.AccessDenied") {
        m.bad.push(format!(
            "a call from uid 65534 was not refused with AccessDenied (exit {}): stdout {:?} stderr {stderr:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(smode)).unwrap();
    for (d, mode) in opened {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    alive(&mut env, &sync, &mut m, "a foreign user's call").await;

    // --- state files are private
    let mut stack = vec![env.phone.daemon.dirs().data.join("imsync")];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        let mode = md.permissions().mode() & 0o777;
        if md.is_dir() {
            if mode & 0o077 != 0 {
                m.bad.push(format!("{} has mode {mode:o} (want 0700)", p.display()));
            }
            stack.extend(std::fs::read_dir(&p).unwrap().filter_map(|e| e.ok()).map(|e| e.path()));
        } else if mode & 0o077 != 0 {
            m.bad.push(format!("{} has mode {mode:o} (want 0600)", p.display()));
        }
    }

    eprintln!("| call | answer |\n|---|---|\n{}", m.rows.join("\n"));
    env.assert_no_secrets_leaked(&env.phone);
    assert!(m.bad.is_empty(), "{} problems:\n{}", m.bad.len(), m.bad.join("\n"));
}
