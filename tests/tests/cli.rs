//! The `imsync` CLI (acceptance criterion 9): `imsync account set ...` and
//! `imsync backup --wait` against the live daemon, and the same backup's report in
//! `imsync --json status` / `history`.

use std::io::Write;
use std::process::{Command, Stdio};

use harness::TestEnv;

fn imsync(env: &TestEnv) -> Command {
    let bin = harness::daemon::workspace_binary("imsync").expect("imsync binary (cargo build --workspace)");
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SESSION_BUS_ADDRESS", env.phone.bus.address())
        .env("LANG", "C.UTF-8");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_account_set_and_backup_wait() {
    let env = TestEnv::new("cli").await.unwrap();
    let specs = env.contacts(40);
    env.phone.seed(&specs).await.unwrap();
    let s = env.server();
    env.remember_secret(s.username(), s.password());

    // account set, the password through stdin (never on the command line)
    let mut child = imsync(&env)
        .args(["account", "set", "--protocol", "xmpp", "--im-id", "cli@example.org", "--display-name", "Clï"])
        .args(["--server-url", s.url(), "--username", s.username(), "--password-stdin"])
        .args(["--set", "contacts.enabled=true", "--set", "calendar.enabled=false", "--set", "tasks.enabled=false"])
        .args(["--set", "notes.enabled=false", "--set", "sms.enabled=false", "--set", "roster.enabled=false"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{}\n", s.password()).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "account set: {}", String::from_utf8_lossy(&out.stderr));

    // a bad value is refused with the D-Bus error name and exit code 1
    let out = imsync(&env).args(["account", "set", "--set", "contacts.mode=sideways"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("org.imsync.Error.InvalidArgs"), "{out:?}");

    let out = imsync(&env).args(["--json", "account", "show"]).output().unwrap();
    assert!(out.status.success());
    let acc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(acc["account"], "xmpp:cli@example.org");
    assert_eq!(acc["display_name"], "Clï");
    assert_eq!(acc["has_password"], true);
    assert!(acc.get("password").is_none());

    // backup --wait: progress lines, then the report; exit 0
    let out = imsync(&env).args(["backup", "--wait"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l == "contacts: 40/40"), "no final progress line: {stdout}");
    assert!(stdout.contains("contacts: succeeded (slow) — 40 added, 0 replaced, 0 deleted, 0 failed"), "{stdout}");
    assert_eq!(env.server().item_count("contacts"), 40);
    env.assert_server_contacts(&specs, true);

    // --json status and history carry the same report
    let out = imsync(&env).args(["--json", "status"]).output().unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["last_backup"]["state"], "succeeded");
    assert_eq!(st["last_backup"]["classes"]["contacts"]["added"], 40);
    let out = imsync(&env).args(["--json", "history", "--max", "1"]).output().unwrap();
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h.as_array().map(Vec::len), Some(1));

    // nothing changed: the next backup needs no session, exit 0
    let out = imsync(&env).args(["--json", "backup", "--wait"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(r["classes"]["contacts"]["mode"], "none", "{r}");

    // cancel with nothing running: exit 1 with a message
    let out = imsync(&env).arg("cancel").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    env.assert_no_secrets_leaked(&env.phone);
}

/// On a terminal `backup --wait` draws a progress bar per class (indicatif) instead of lines;
/// `account list` marks the default; `restore --wait` brings a wiped contact back;
/// `account remove` forgets the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_on_a_terminal_restore_list_and_remove() {
    let env = TestEnv::new("cli-tty").await.unwrap();
    let specs = env.contacts(12);
    let uids = env.phone.seed(&specs).await.unwrap();
    let s = env.server();
    env.remember_secret(s.username(), s.password());
    let mut child = imsync(&env)
        .args(["account", "set", "--protocol", "matrix", "--im-id", "@tty:example.org"])
        .args(["--server-url", s.url(), "--username", s.username(), "--password-stdin"])
        .args(["--set", "calendar.enabled=false", "--set", "tasks.enabled=false", "--set", "notes.enabled=false"])
        .args(["--set", "sms.enabled=false", "--set", "roster.enabled=false"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(s.password().as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    // `script` gives the CLI a pseudo-terminal; its output is what a person sees.
    let bin = harness::daemon::workspace_binary("imsync").unwrap();
    let out = Command::new("script")
        .args(["-qec", &format!("{} backup --wait", bin.display()), "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm")
        .env("DBUS_SESSION_BUS_ADDRESS", env.phone.bus.address())
        .output()
        .expect("script(1) from bsdutils");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("contacts [") && screen.contains("12/12"), "no progress bar on the terminal: {screen:?}");
    assert!(!screen.lines().any(|l| l.trim() == "contacts: 12/12"), "plain progress lines on a terminal: {screen}");
    assert!(screen.contains("contacts: succeeded (slow) — 12 added"), "{screen}");

    let out = imsync(&env).args(["account", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.lines().any(|l| l.starts_with("* matrix:@tty:example.org")), "{list}");

    // wipe two contacts, restore them with the CLI
    env.phone.book().remove_contacts(&uids[..2]).await.unwrap();
    let out = imsync(&env).args(["restore", "--wait", "--class", "contacts"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("contacts: succeeded") && text.contains("2 added"), "{text}");
    assert_eq!(env.phone.book().list_uids().await.unwrap().len(), 12);

    let out = imsync(&env).args(["account", "remove", "matrix:@tty:example.org"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = imsync(&env).args(["account", "show"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("org.imsync.Error.NotConfigured"));
    let out = imsync(&env).args(["account", "remove", "matrix:@nobody"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    env.assert_no_secrets_leaked(&env.phone);
}
