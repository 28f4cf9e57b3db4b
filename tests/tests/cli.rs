//! The `imsync` CLI (acceptance criterion 9): `imsync account set ...` and
//! `imsync backup --wait` against the live daemon.
//!
//! Left for later on purpose: the CLI's flags are still being designed.
//! When they are settled, run the binary (harness::daemon::workspace_binary
//! ("imsync")) with the phone's DBUS_SESSION_BUS_ADDRESS, set the account of
//! `env.account()` through it, run `backup --wait`, and check the exit code,
//! the printed report and `env.assert_server_contacts(..)`.

#[test]
#[ignore = "CLI flags are being designed; see the module comment"]
fn cli_account_set_and_backup_wait() {
    let imsync = harness::daemon::workspace_binary("imsync").expect("imsync binary");
    let out = std::process::Command::new(imsync).arg("--help").output().expect("run imsync --help");
    assert!(out.status.success());
}
