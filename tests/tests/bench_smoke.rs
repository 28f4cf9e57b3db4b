//! The benchmark driver (`imsync-bench`) keeps working: a small run (200 contacts, two cold
//! starts) end to end with the real components. No targets are enforced here (the numbers
//! of a debug build on a shared CI machine mean nothing); only that every step runs and the
//! JSON has the expected shape. The real benchmark: `tools/bench` (release build).

use std::process::Command;

#[test]
fn bench_driver_runs_small() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_imsync-bench"))
        .args(["--contacts", "200", "--smoke", "--nochange-runs", "2", "--cold-runs", "2", "--json"])
        .arg(&json)
        .output()
        .expect("run imsync-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "imsync-bench failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("| 200 | first | slow |"), "no table row for the first backup:\n{stdout}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let size = &doc["sizes"][0];
    assert_eq!(size["n"], 200);
    let first = &size["first"];
    assert_eq!(first["state"], "succeeded", "{doc:#}");
    assert_eq!(first["mode"], "slow", "a fresh phone's first backup is a slow sync: {doc:#}");
    assert_eq!(first["added"].as_u64().unwrap() + first["replaced"].as_u64().unwrap(), 200, "{doc:#}");
    assert!(first["messages"].as_u64().unwrap() >= 1 && first["bytes_sent"].as_u64().unwrap() > 0, "{doc:#}");
    assert!(first["cpu_s"].as_f64().unwrap() > 0.0 || first["wall_s"].as_f64().unwrap() > 0.0);
    assert!(first["peak_rss_kb"].as_u64().unwrap() > 0, "{doc:#}");
    let nochange = &size["nochange"];
    assert_eq!(nochange["mode"], "none", "nothing changed: no session: {doc:#}");
    assert_eq!(nochange["messages"], 0, "{doc:#}");
    let change = &size["change_1pct"];
    assert_eq!(change["state"], "succeeded", "{doc:#}");
    assert_eq!(change["replaced"], 2, "1 % of 200 contacts changed: {doc:#}");
    let fp = &doc["footprint"];
    assert_eq!(fp["exited"], true, "imsyncd --idle-timeout 2 must exit: {doc:#}");
    assert_eq!(fp["cold_start_s"].as_array().unwrap().len(), 2, "{doc:#}");
}
