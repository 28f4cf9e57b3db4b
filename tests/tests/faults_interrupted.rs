//! Interrupted sessions against the real SyncEvolution server: a fault proxy
//! (`harness::fault_proxy`) between imsyncd and the server cuts the connection
//! before forwarding a message, after the server applied it (its answer is
//! lost), answers HTTP 500, or delays, at fixed points spread over a backup
//! session of many messages (the server's MaxMsgSize is small). After each
//! fault the next Backup() must succeed and the server must hold exactly the
//! phone's contacts, field by field: nothing lost, nothing duplicated.
//!
//! Half of the rounds run as incremental backups (two-way or one-way-from-client, the
//! default; edit 40, add 2, delete 1), half
//! with the class configured `slow` (every session sends every contact, so a
//! session has many messages and late points are reachable; adds only: a slow
//! sync never deletes on the server, and SyncEvolution keeps the old copy of a
//! contact edited between two slow syncs).
//!
//! Every contact has a distinct name: in a slow sync SyncEvolution merges an
//! incoming contact into a stored one *with the same name* (a documented
//! server-side merge, see backup_contacts.rs), which is not what is tested here.
//!
//! CI runs 23 points over 150 contacts; `IMSYNC_LONG_FAULTS=1` runs 39 points
//! over 300 contacts.

use std::time::{Duration, Instant};

use harness::fault_proxy::{At, Fault, FaultKind, FaultProxy};
use harness::sync1;
use harness::syncml_server::ServerOptions;
use harness::{ContactSpec, EnvOptions, TestEnv};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

fn long() -> bool {
    std::env::var("IMSYNC_LONG_FAULTS").is_ok_and(|v| v == "1")
}


/// The phone's contacts as the test knows them (specs + EDS UIDs).
struct PhoneBook {
    specs: Vec<ContactSpec>,
    uids: Vec<String>,
    next: usize,
}

impl PhoneBook {
    /// Edit 40, add 2, delete 1; with `slow` only add 2 (deterministic by round).
    ///
    /// A slow sync matches what it sends with what the server has by content:
    /// SyncEvolution stores an edited contact as a new one and keeps the old
    /// (the engine then reports ServerHasOtherData), so configured-slow rounds
    /// do not edit.
    async fn mutate(&mut self, env: &TestEnv, round: usize, slow: bool) {
        let n = self.specs.len();
        let mut modified = vec![];
        let mut picked = std::collections::BTreeSet::new();
        for k in 0..if slow { 0 } else { 40 } {
            let i = (round * 7 + k * 13) % n;
            if !picked.insert(i) {
                continue;
            }
            self.specs[i].note = Some(format!("Edited (round {round})\nline 2 [#{}]", self.specs[i].index));
            modified.push(self.specs[i].to_vcard(Some(&self.uids[i])));
        }
        if !modified.is_empty() {
            env.phone.book().modify_contacts(&modified).await.unwrap();
        }
        let mut added = env.contacts_range(self.next, 2);
        for a in &mut added {
            a.rename_family(&format!(" {}", a.index));
        }
        self.next += 2;
        let uids = env.phone.seed(&added).await.unwrap();
        self.specs.extend(added);
        self.uids.extend(uids);
        if slow {
            return;
        }
        let del = (round * 11 + 5) % self.specs.len();
        env.phone.book().remove_contacts(&[self.uids[del].clone()]).await.unwrap();
        self.specs.remove(del);
        self.uids.remove(del);
    }
}

/// The phone's contacts by test key (count per key).
async fn phone_keys(env: &TestEnv) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for v in env.phone.book().list().await.unwrap() {
        if let Some(k) = harness::vcard::parse(&v).and_then(|c| c.key()) {
            *m.entry(k).or_default() += 1;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_interrupted_at_many_points_loses_and_duplicates_nothing() {
    let count = if long() { 300 } else { 150 };
    let server_opts = ServerOptions { max_msg_size: Some(10_000), ..ServerOptions::default() };
    let env = TestEnv::with_server_options("faults-cut", EnvOptions::default(), server_opts).await.unwrap();
    let mut specs = env.contacts(count);
    for s in &mut specs {
        s.rename_family(&format!(" {}", s.index));
    }
    let uids = env.phone.seed(&specs).await.unwrap();
    let mut book = PhoneBook { specs, uids, next: 10_000 };
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", env.server().port())).unwrap();
    let s = env.server();
    env.remember_secret(s.username(), s.password());
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&sync1::contacts_account(&proxy.url_for(s.url()), s.username(), s.password())).await.expect("SetAccount");

    let set_mode = |mode: &'static str| {
        let mut d = sync1::Dict::new();
        d.insert("contacts.mode".into(), sync1::s(mode));
        d
    };
    // a first, complete backup tells how long a full (slow) session is
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    env.assert_server_contacts(&book.specs, true);
    let full = proxy.sessions().last().unwrap().1;
    eprintln!("full session: {full} messages ({})", o.summary("contacts"));
    assert!(full >= 8, "a full session has only {full} messages: lower the server's MaxMsgSize");

    // fixed points: message numbers spread over a full session, every kind of fault,
    // plus the messages that carry a Sync (the server applies it, the client never
    // sees the statuses)
    use FaultKind::*;
    let kinds = [CutAfterServer, CutBeforeForward, Http500, CutAfterServer, Delay(Duration::from_secs(2))];
    // (the class's configured mode, fault); incremental points alternate between two-way and
    // one-way-from-client (the default of a backup)
    let mut faults: Vec<(&str, Fault)> = vec![];
    let incremental = |i: usize| if i.is_multiple_of(2) { "two-way" } else { "one-way-from-client" };
    let points = if long() { 16 } else { 10 };
    for i in 0..points {
        // slow sessions: spread over the whole session
        let msg = 1 + (i as u32 * (full - 1)) / (points as u32 - 1);
        faults.push(("slow", Fault { at: At::Msg(msg), kind: kinds[i % kinds.len()] }));
    }
    let two_way_len = 6; // 40 edits at MaxMsgSize 10000: about 6 messages
    for i in 0..points {
        let msg = 1 + (i as u32 * (two_way_len - 1)) / (points as u32 - 1);
        faults.push((incremental(i), Fault { at: At::Msg(msg), kind: kinds[(i + 1) % kinds.len()] }));
    }
    // the server applied a Sync, the client never saw the statuses
    faults.push(("two-way", Fault { at: At::NthCmd("Sync", 1), kind: CutAfterServer }));
    faults.push(("one-way-from-client", Fault { at: At::NthCmd("Sync", 1), kind: CutAfterServer }));
    faults.push(("slow", Fault { at: At::NthCmd("Sync", 3), kind: CutAfterServer }));
    if long() {
        faults.push(("slow", Fault { at: At::Msg(full), kind: CutAfterServer }));
        faults.push(("two-way", Fault { at: At::NthCmd("Sync", 2), kind: CutBeforeForward }));
        faults.push(("one-way-from-client", Fault { at: At::NthCmd("Sync", 2), kind: Http500 }));
        faults.push(("slow", Fault { at: At::NthCmd("Sync", 5), kind: Http500 }));
        faults.push(("two-way", Fault { at: At::Msg(2), kind: Delay(Duration::from_secs(10)) }));
    }

    let mut table = vec![];
    let t0 = Instant::now();
    let mut mode = "";
    for (round, (want, f)) in faults.iter().enumerate() {
        let want = *want;
        let slow = &(want == "slow");
        if want != mode {
            sync.set_account(&set_mode(want)).await.expect("SetAccount contacts.mode");
            mode = want;
        }
        book.mutate(&env, round, *slow).await;
        // only what fires from now on counts (an equal fault of an earlier round fired too)
        let fired_before = proxy.fired().len();
        proxy.arm(*f);
        let faulty = sync.run_backup(JOB_TIMEOUT).await.unwrap();
        proxy.disarm();
        let fired = proxy.fired().into_iter().skip(fired_before).rev().find(|(ff, _)| ff == f).map(|(_, seen)| seen);
        let recovered = sync.run_backup(JOB_TIMEOUT).await.unwrap();
        let problems = env.server_contact_problems(&book.specs, true);
        // When the server applied part of an incremental Sync before the session broke, it
        // keeps those items but forgets their LUIDs: the recovery backup must pair them with
        // the phone's items (it holds them back, the server shows them, a Map links them)
        // instead of storing them again.
        let partial_sync = fired.as_ref().is_some_and(|h| proxy.server_got_sync_before(h));
        let verdict = if problems.is_empty() {
            format!("exact ({} contacts){}", book.specs.len(), if partial_sync && !*slow { ", server had applied part of the Sync" } else { "" })
        } else {
            format!("{} PROBLEMS", problems.len())
        };
        let line = format!(
            "| {want} | {:?} at {:?} | {} | {} | {} | {} |",
            f.kind,
            f.at,
            fired.as_ref().map_or("not reached".to_string(), |s| format!("msg {} {:?}", s.msg_id, s.commands)),
            faulty.summary("contacts"),
            recovered.summary("contacts"),
            verdict
        );
        eprintln!("{line}");
        table.push(line);
        assert!(
            problems.is_empty(),
            "after {f:?} (faulty job: {}; recovery: {}): server differs from the phone:\n{}",
            faulty.summary("contacts"),
            recovered.summary("contacts"),
            problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        assert_eq!(recovered.state, "succeeded", "after {f:?}: {}\n{}", recovered.summary("contacts"), env.daemon_log_tail());
        if !matches!(f.kind, Delay(_)) && fired.is_some() {
            assert_ne!(faulty.state, "succeeded", "{f:?} fired but the job succeeded: {}", faulty.summary("contacts"));
            assert!(!faulty.error.is_empty(), "{f:?}: failed job without an error: {}", faulty.summary("contacts"));
        }
    }
    // --- a restore cut during its Map (the phone wrote the items, the server
    // never learns their ids), and once after the server answered the Map
    for (round, kind) in [CutBeforeForward, CutAfterServer, Http500].into_iter().enumerate() {
        let gone: Vec<String> = (0..10).map(|k| book.uids[(round * 37 + k * 5) % book.uids.len()].clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        env.phone.book().remove_contacts(&gone).await.unwrap();
        let f = Fault { at: At::Cmd("Map"), kind };
        let fired_before = proxy.fired().len();
        proxy.arm(f);
        let faulty = sync.run_restore(&["contacts"], JOB_TIMEOUT).await.unwrap();
        proxy.disarm();
        let fired = proxy.fired().into_iter().skip(fired_before).rev().find(|(ff, _)| *ff == f).map(|(_, seen)| seen);
        let recovered = sync.run_restore(&["contacts"], JOB_TIMEOUT).await.unwrap();
        let keys = phone_keys(&env).await;
        let want: std::collections::BTreeMap<String, usize> = book.specs.iter().map(|s| (s.key().to_string(), 1)).collect();
        let line = format!(
            "| restore | {kind:?} at Map | {} | {} | {} | {} |",
            fired.as_ref().map_or("not reached".to_string(), |s| format!("msg {} {:?}", s.msg_id, s.commands)),
            faulty.summary("contacts"),
            recovered.summary("contacts"),
            {
                if keys == want { format!("phone exact ({})", keys.len()) } else { "PHONE DIFFERS".to_string() }
            }
        );
        eprintln!("{line}");
        table.push(line);
        assert!(fired.is_some(), "the restore sent no Map: {}", faulty.summary("contacts"));
        assert_eq!(recovered.state, "succeeded", "{}\n{}", recovered.summary("contacts"), env.daemon_log_tail());
        let missing: Vec<_> = want.keys().filter(|k| !keys.contains_key(*k)).collect();
        let dup: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
        let extra: Vec<_> = keys.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(keys == want, "restore after {f:?}: missing {missing:?}, duplicated {dup:?}, extra {extra:?}");
        // new EDS UIDs for the restored contacts
        let mut by_key = std::collections::BTreeMap::new();
        for v in env.phone.book().list().await.unwrap() {
            let c = harness::vcard::parse(&v).unwrap();
            if let (Some(k), Some(uid)) = (c.key(), c.first("UID").map(|p| p.text())) {
                by_key.insert(k, uid);
            }
        }
        book.uids = book.specs.iter().map(|s| by_key[s.key()].clone()).collect();
    }
    // and the next backup finds the server as it was
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    table.push(format!("| backup after the restores | | | {} | | |", o.summary("contacts")));
    let problems: Vec<String> = env.server_contact_problems(&book.specs, true);
    assert!(problems.is_empty(), "after the restores:\n{}", problems.join("\n"));

    eprintln!(
        "| session | fault | hit | faulty job | next backup | server |\n|---|---|---|---|---|---|\n{}\n{} faults in {:.0} s",
        table.join("\n"),
        faults.len(),
        t0.elapsed().as_secs_f64()
    );
    env.assert_no_secrets_leaked(&env.phone);
}
