//! imsyncd killed with SIGKILL in the middle of a session, at points chosen by
//! the fault proxy (after it saw message N: before forwarding it, or after the
//! server answered it), for a backup and for a restore. After each kill the
//! daemon is started again on the same state: the SQLite state passes
//! `PRAGMA integrity_check`, the history names the killed job
//! (`org.imsync.Error.Interrupted`), and the next backup / restore ends with
//! the server and the phone holding exactly the same contacts, once each.
//!
//! The points are drawn from the test seed (printed; `IMSYNC_TEST_SEED`
//! repeats them). 10 backup and 10 restore points.
//!
//! A kill after the server applied part of an incremental Sync leaves items on
//! the server whose LUIDs it forgot: the next backup must pair them with the
//! phone's items (a recovery, see faults_interrupted.rs), never store them twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::fault_proxy::{At, Fault, FaultKind, FaultProxy, Seen};
use harness::sync1;
use harness::syncml_server::ServerOptions;
use harness::{ContactSpec, EnvOptions, TestEnv};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);
const POINTS: usize = 10;


struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(n.max(1))) as u32
    }
}

fn integrity_check(db: &std::path::Path) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('PRAGMA integrity_check').fetchone()[0])")
        .arg(db)
        .output()
        .expect("python3");
    format!("{}{}", String::from_utf8_lossy(&out.stdout).trim(), String::from_utf8_lossy(&out.stderr).trim())
}

fn state_db(env: &TestEnv) -> std::path::PathBuf {
    env.phone.daemon.dirs().data.join("imsync/state.db")
}

/// Start a backup (or restore) and kill the daemon at `at`; returns the request
/// the kill hit (None: the session ended before that point) once the daemon
/// is gone or the job ended.
async fn kill_during(env: &mut TestEnv, proxy: &FaultProxy, at: At, after_server: bool, restore: bool) -> Option<Seen> {
    let pid = env.phone.daemon.pid().expect("daemon running");
    let kind = if after_server { FaultKind::KillAfterServer(pid) } else { FaultKind::KillBeforeForward(pid) };
    proxy.arm(Fault { at, kind });
    let sync = env.phone.sync1().await.unwrap();
    let started = if restore { sync.restore(&["contacts"]).await } else { sync.backup().await };
    let job = started.expect("job started");
    let t = Instant::now();
    while env.phone.daemon.is_running() && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let state: Option<String> = match sync.job(job.as_str()).await {
            Ok(p) => p.get_property("State").await.ok(),
            Err(_) => None,
        };
        if state.as_deref().is_some_and(|s| s != "running") {
            break;
        }
    }
    proxy.disarm();
    let killed = !env.phone.daemon.is_running();
    env.phone.daemon.stop();
    let integrity = integrity_check(&state_db(env));
    assert_eq!(integrity, "ok", "state database after SIGKILL at {at:?}");
    let fired = proxy.fired().into_iter().rev().find(|(f, _)| f.kind == kind).map(|(_, s)| s);
    if !killed {
        // the session ended before the point: no kill; start again
        env.phone.daemon.start().await.unwrap();
        return None;
    }
    env.phone.daemon.start().await.unwrap();
    fired
}

/// The phone's contacts by test key (count per key).
async fn phone_keys(env: &TestEnv) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in env.phone.book().list().await.unwrap() {
        if let Some(k) = harness::vcard::parse(&v).and_then(|c| c.key()) {
            *m.entry(k).or_default() += 1;
        }
    }
    m
}

fn expect_keys(specs: &[ContactSpec]) -> BTreeMap<String, usize> {
    specs.iter().map(|s| (s.key().to_string(), 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_during_backup_and_restore_loses_and_duplicates_nothing() {
    let server_opts = ServerOptions { max_msg_size: Some(10_000), ..ServerOptions::default() };
    let mut env = TestEnv::with_server_options("faults-kill", EnvOptions::default(), server_opts).await.unwrap();
    let mut rng = Rng(env.seed ^ 0x5eed);
    let mut specs = env.contacts(120);
    for s in &mut specs {
        s.rename_family(&format!(" {}", s.index));
    }
    let mut uids = env.phone.seed(&specs).await.unwrap();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", env.server().port())).unwrap();
    let (user, pw, url) = (env.server().username().to_string(), env.server().password().to_string(), env.server().url().to_string());
    env.remember_secret(&user, &pw);
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&sync1::contacts_account(&proxy.url_for(&url), &user, &pw)).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}", o.summary("contacts"));
    let full = proxy.sessions().last().unwrap().1;
    eprintln!("full backup session: {full} messages");
    let mut table = vec![];
    let t0 = Instant::now();
    let mut next_new = 5000;

    // --- backup: edit 20, add 2, delete 1, then kill somewhere in the session
    for round in 0..POINTS {
        let n = specs.len();
        let mut modified = vec![];
        for k in 0..20 {
            let i = (round * 17 + k * 7) % n;
            specs[i].note = Some(format!("Edited (kill round {round})\nline 2 [#{}]", specs[i].index));
            modified.push(specs[i].to_vcard(Some(&uids[i])));
        }
        modified.sort();
        modified.dedup();
        env.phone.book().modify_contacts(&modified).await.unwrap();
        let mut added = env.contacts_range(next_new, 2);
        next_new += 2;
        for a in &mut added {
            a.rename_family(&format!(" {}", a.index));
        }
        uids.extend(env.phone.seed(&added).await.unwrap());
        specs.extend(added);
        let del = (round * 29 + 3) % specs.len();
        env.phone.book().remove_contacts(&[uids[del].clone()]).await.unwrap();
        specs.remove(del);
        uids.remove(del);

        let at = At::Msg(1 + rng.next(4));
        let after = rng.next(2) == 1;
        let hit = kill_during(&mut env, &proxy, at, after, false).await;
        let integrity = "ok";
        let sync = env.phone.sync1().await.unwrap();
        let history = sync.history(3).await.unwrap();
        let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
        let problems = env.server_contact_problems(&specs, true);
        let partial_sync = hit.as_ref().is_some_and(|h| proxy.server_got_sync_before(h));
        let interrupted = history.iter().any(|h| h.to_string().contains("Interrupted"));
        let line = format!(
            "| backup | kill {} server at {at:?} | {} | {integrity} | {} | {} | {} |",
            if after { "after" } else { "before" },
            hit.as_ref().map_or("not reached".into(), |m| format!("killed at msg {} {:?}", m.msg_id, m.commands)),
            if interrupted { "Interrupted in history" } else { "-" },
            o.summary("contacts"),
            if problems.is_empty() {
                format!("exact ({}){}", specs.len(), if partial_sync { ", server had applied part of the Sync" } else { "" })
            } else {
                format!("{} PROBLEMS", problems.len())
            }
        );
        eprintln!("{line}");
        table.push(line);
        assert!(problems.is_empty(), "after a kill at {at:?}: {}\n{}", o.summary("contacts"), problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
        assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
        if hit.is_some() {
            assert!(interrupted, "the killed job is not reported as interrupted: {history:#?}");
        }
    }

    // --- restore: remove 15 contacts from the phone, restore them, kill on the way
    for round in 0..POINTS {
        let gone: Vec<String> = (0..15).map(|k| uids[(round * 31 + k * 11) % uids.len()].clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        env.phone.book().remove_contacts(&gone).await.unwrap();
        let at = if round % 3 == 0 { At::Cmd("Map") } else { At::Msg(1 + rng.next(4)) };
        let after = rng.next(2) == 1;
        let hit = kill_during(&mut env, &proxy, at, after, true).await;
        let integrity = "ok";
        let sync = env.phone.sync1().await.unwrap();
        let o = sync.run_restore(&["contacts"], JOB_TIMEOUT).await.unwrap();
        let keys = phone_keys(&env).await;
        let want = expect_keys(&specs);
        let ok = keys == want;
        let line = format!(
            "| restore | kill {} server at {at:?} | {} | {integrity} | | {} | {} |",
            if after { "after" } else { "before" },
            hit.as_ref().map_or("not reached".into(), |m| format!("killed at msg {} {:?}", m.msg_id, m.commands)),
            o.summary("contacts"),
            if ok { format!("phone exact ({})", keys.len()) } else { "phone DIFFERS".into() }
        );
        eprintln!("{line}");
        table.push(line);
        assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
        if !ok {
            let missing: Vec<_> = want.keys().filter(|k| !keys.contains_key(*k)).collect();
            let dup: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
            let extra: Vec<_> = keys.keys().filter(|k| !want.contains_key(*k)).collect();
            panic!("after a kill at {at:?} in a restore: missing {missing:?}, duplicated {dup:?}, extra {extra:?}");
        }
        // EDS UIDs changed for the restored contacts: take them from the book
        let mut by_key = BTreeMap::new();
        for v in env.phone.book().list().await.unwrap() {
            let c = harness::vcard::parse(&v).unwrap();
            if let (Some(k), Some(uid)) = (c.key(), c.first("UID").map(|p| p.text())) {
                by_key.insert(k, uid);
            }
        }
        uids = specs.iter().map(|s| by_key[s.key()].clone()).collect();
    }
    // afterwards a backup sends no more than real differences, and the server is exact
    let sync = env.phone.sync1().await.unwrap();
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("backup after the restores: {}", o.summary("contacts"));
    assert_eq!(o.state, "succeeded", "{}", o.summary("contacts"));
    let problems: Vec<String> = env.server_contact_problems(&specs, true);
    assert!(problems.is_empty(), "after the restores:\n{}", problems.join("\n"));
    eprintln!(
        "| kind | point | hit | integrity_check | history | next job | result |\n|---|---|---|---|---|---|---|\n{}\n{} kills in {:.0} s",
        table.join("\n"),
        2 * POINTS,
        t0.elapsed().as_secs_f64()
    );
    env.assert_no_secrets_leaked(&env.phone);
}
