//! The sync password never lands in the daemon's logs or state files
//! (acceptance criterion 7): with gnome-keyring as Secret Service (then the
//! password is in the keyring, found by `application=imsync`), and with no
//! Secret Service provider on the bus at all.

use std::time::Duration;

use harness::{EnvOptions, PhoneOptions, TestEnv};

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

async fn backup_twice_with_restart(env: &mut TestEnv) {
    let specs = env.contacts(8);
    env.phone.seed(&specs).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{:?} {:#}\n{}", o.error, o.report.raw, env.daemon_log_tail());
    env.assert_server_contacts(&specs, true);

    // the password must survive a restart (it is needed for the next backup)
    env.phone.daemon.restart().await.unwrap();
    let more = env.contacts_range(500, 2);
    env.phone.seed(&more).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    let account = sync.get_account_json().await.unwrap();
    assert_eq!(account.get("has_password"), Some(&serde_json::json!(true)), "after restart: {account:#}");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "after restart: {:?} {:#}\n{}", o.error, o.report.raw, env.daemon_log_tail());
    assert_eq!(o.report.class("contacts").added, 2, "{:#}", o.report.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_is_kept_in_the_secret_service_and_nowhere_else() {
    let mut env = TestEnv::new("secrets-keyring").await.unwrap();
    assert!(env.phone.keyring.is_some());
    backup_twice_with_restart(&mut env).await;

    let found = harness::keyring::search_secrets(env.phone.connection(), &[("application", "imsync")]).await.unwrap();
    eprintln!(
        "Secret Service items for application=imsync: {:?}",
        found.iter().map(|s| (&s.label, &s.attributes)).collect::<Vec<_>>()
    );
    assert!(
        found.iter().any(|s| s.secret == env.server().password().as_bytes()),
        "the sync password is not in the Secret Service (application=imsync): {} items",
        found.len()
    );
    env.phone.daemon.stop();
    env.assert_no_secrets_leaked(&env.phone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_stays_out_of_files_and_logs_without_secret_service() {
    let opts = EnvOptions { phone: PhoneOptions { keyring: false, ..Default::default() }, ..Default::default() };
    let mut env = TestEnv::with_options("secrets-nokeyring", opts).await.unwrap();
    assert!(!harness::bus::name_has_owner(env.phone.connection(), harness::keyring::SECRETS_NAME).await.unwrap());
    backup_twice_with_restart(&mut env).await;
    env.phone.daemon.stop();
    env.assert_no_secrets_leaked(&env.phone);
}
