//! The real daemon against a hostile SyncML server (`harness::hostile`, no
//! SyncEvolution): every case of the corpus (`syncml/tests/hostile/corpus.rs`)
//! must give a job that did not succeed, with an error, within 60 s, with the
//! daemon alive and under 64 MB peak RSS (VmHWM), and with the anchors only
//! ever advanced by sessions that completed (checked on the next session's
//! Alert: its Last anchor is the last completed session's Next, or none).

use std::time::{Duration, Instant};

use harness::hostile::HostileServer;
use harness::sync1::{self, JobOutcome};
use harness::{EnvOptions, TestEnv};

/// Cases in which the daemon may end the job as succeeded (see the sans-IO
/// test for why): the hostile part does not concern what we sent.
const TOLERATED: &[&str] = &[
    "wrong-msgref-everywhere",
    "huge-ids",
    "duplicate-statuses",
    "status-flood-100k",
    "status-flood-13k",
    "max-msg-size-0",
    "max-msg-size-1",
    "max-msg-size-u64-max",
    "server-sync-unknown-store-1000-adds",
    "server-item-10mb",
];

const CASE_TIME: Duration = Duration::from_secs(60);
const MAX_HWM_KB: u64 = 64 * 1024;

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn short(o: &JobOutcome) -> String {
    let c = o.report.classes.get("contacts");
    format!(
        "{} error {:?} class error {:?} {:?}",
        o.state,
        o.error,
        c.map(|c| c.error.as_str()).unwrap_or(""),
        c.and_then(|c| c.errors.first()).map(|e| e.chars().take(160).collect::<String>()).unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_server_corpus_against_the_daemon() {
    let opts = EnvOptions { server: false, ..EnvOptions::default() };
    let mut env = TestEnv::with_options("hostile", opts).await.unwrap();
    let srv = HostileServer::start().unwrap();
    let specs = env.contacts(5);
    env.phone.seed(&specs).await.unwrap();
    let (user, pw) = ("hostile-user", harness::random_token("pw", 20));
    env.remember_secret(user, &pw);
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&sync1::contacts_account(srv.url(), user, &pw)).await.expect("SetAccount");

    // a well-behaved session first: anchors exist from then on
    srv.set_case(None);
    let o = sync.run_backup(CASE_TIME).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", short(&o), env.daemon_log_tail());
    let log = srv.log();
    let mut anchor = log.alerts.first().and_then(|a| a.2.clone()).expect("client Next anchor");
    eprintln!("benign session: {} messages, client Next anchor {anchor:?}", log.messages);

    let filter = std::env::var("IMSYNC_HOSTILE_CASE").ok();
    let mut table = vec![];
    let mut bad = vec![];
    let mut n_extra = 0;
    let total = Instant::now();
    for (i, case) in srv.cases().iter().enumerate() {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        // a change, so that there is a session
        n_extra += 1;
        env.phone.seed(&env.contacts_range(100 + n_extra, 1)).await.unwrap();
        srv.set_case(Some(i));
        let t = Instant::now();
        let o = match harness::timeout(CASE_TIME + Duration::from_secs(30), sync.run_backup(CASE_TIME)).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) | Err(e) => {
                bad.push(format!("{}: no job outcome: {e}", case.name));
                continue;
            }
        };
        let took = t.elapsed();
        let log = srv.log();
        let alive = env.phone.daemon.is_running();
        let hwm = env.phone.daemon.pid().and_then(vm_hwm_kb).unwrap_or(0);
        if !alive {
            bad.push(format!("{}: the daemon died\n{}", case.name, env.daemon_log_tail()));
            env.phone.daemon.start().await.unwrap();
        }
        let previous_anchor = anchor.clone();
        // A job is one session, or two when it recovered from a broken session (the
        // follow-up sends the held-back items). Each session alerts as Last the Next of the
        // last completed one; a completed job (also partial) commits its last session's
        // Next; a failed follow-up leaves the first session's.
        // (a message resent in the same session, e.g. with credentials, repeats its Alert)
        let mut sessions: Vec<(Option<String>, Option<String>)> = log.alerts.iter().map(|a| (a.1.clone(), a.2.clone())).collect();
        sessions.dedup();
        let mut expected = Some(previous_anchor.clone());
        for (k, (last, next)) in sessions.iter().enumerate() {
            if last.is_some() && *last != expected {
                bad.push(format!("{}: session {} alerted Last {last:?}, the last completed session's Next was {expected:?}", case.name, k + 1));
            }
            expected = next.clone();
        }
        let completed = match o.state.as_str() {
            "succeeded" | "partial" => sessions.len().checked_sub(1),
            _ => sessions.len().checked_sub(2),
        };
        if let Some(next) = completed.and_then(|k| sessions[k].1.clone()) {
            anchor = next;
        }
        if !log.applied && matches!(case.when, harness::hostile::corpus::When::Cmd("Map") | harness::hostile::corpus::When::FromCmd("Map")) {
            // a backup sends no Map (the sans-IO test covers these)
            table.push(format!("| {} | not applicable (no Map in a backup) | | |", case.name));
            continue;
        }
        if !log.applied {
            bad.push(format!("{}: the hostile answer was never served ({} messages)", case.name, log.messages));
        }
        if o.state == "succeeded" && !TOLERATED.contains(&case.name) {
            bad.push(format!("{}: job succeeded", case.name));
        }
        if o.state != "succeeded" && o.error.is_empty() && o.report.classes.values().all(|c| c.error.is_empty() && c.errors.is_empty()) {
            bad.push(format!("{}: {} without any error", case.name, o.state));
        }
        if took > CASE_TIME {
            bad.push(format!("{}: took {took:?}", case.name));
        }
        if hwm > MAX_HWM_KB {
            bad.push(format!("{}: VmHWM {hwm} kB", case.name));
        }
        let sessions_note = if sessions.len() > 1 { format!(" ({} sessions)", sessions.len()) } else { String::new() };
        table.push(format!("| {} | {}{sessions_note} | {:.1} s | {} MB |", case.name, short(&o).replace('|', "/"), took.as_secs_f64(), hwm / 1024));
    }
    eprintln!("| case | outcome | time | VmHWM |\n|---|---|---|---|\n{}", table.join("\n"));
    eprintln!("{} cases in {:.1} s", table.len(), total.elapsed().as_secs_f64());
    // the daemon still works with the well-behaved server
    srv.set_case(None);
    let o = sync.run_backup(CASE_TIME).await.unwrap();
    assert_eq!(o.state, "succeeded", "after the corpus: {}\n{}", short(&o), env.daemon_log_tail());
    assert!(bad.is_empty(), "{} problems:\n{}", bad.len(), bad.join("\n"));
    env.assert_no_secrets_leaked(&env.phone);
}
