//! Failing backups (acceptance criterion 5): wrong password, server not
//! listening. Both fail clearly and leave the sync state untouched, so the
//! next good backup sends everything.

use std::time::Duration;

use harness::sync1::{self, JobOutcome};
use harness::TestEnv;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

fn describe(o: &JobOutcome) -> String {
    format!("job {} state {:?} error {:?} report {:#}", o.path, o.state, o.error, o.report.raw)
}

fn mentions_any(text: &str, words: &[&str]) -> bool {
    let t = text.to_lowercase();
    words.iter().any(|w| t.contains(w))
}

async fn then_correct_settings_back_up_everything(env: &TestEnv, specs: &[harness::ContactSpec]) {
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount with the right settings");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (specs.len() as u64, 0, 0, 0), "{}", describe(&o));
    env.assert_server_contacts(specs, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_clearly_then_right_password_works() {
    let env = TestEnv::new("wrong-password").await.unwrap();
    let specs = env.contacts(30);
    env.phone.seed(&specs).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();

    let wrong = harness::random_token("wrong", 16);
    let mut account = env.account();
    env.remember_secret(env.server().username(), &wrong);
    account.insert("password".into(), sync1::s(&wrong));
    sync.set_account(&account).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("wrong password: {}", describe(&o));
    assert_eq!(o.state, "failed", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert!(
        mentions_any(&o.error, &["auth", "password", "credential", "401", "unauthori", "denied"]),
        "Error should say that the credentials were refused: {:?}",
        o.error
    );
    assert_eq!(env.server().item_count("contacts"), 0);

    then_correct_settings_back_up_everything(&env, &specs).await;
    env.assert_no_secrets_leaked(&env.phone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_not_listening_fails_clearly_then_works() {
    let env = TestEnv::new("server-down").await.unwrap();
    let specs = env.contacts(30);
    env.phone.seed(&specs).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();

    let port = harness::syncml_server::closed_port().unwrap();
    let mut account = env.account();
    account.insert("server_url".into(), sync1::s(&format!("http://127.0.0.1:{port}/syncevolution")));
    sync.set_account(&account).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("server down: {}", describe(&o));
    assert_eq!(o.state, "failed", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert!(
        mentions_any(&o.error, &["connect", "refused", "reach", "network", "server", "transport"]),
        "Error should say that the server could not be reached: {:?}",
        o.error
    );

    then_correct_settings_back_up_everything(&env, &specs).await;
    env.assert_no_secrets_leaked(&env.phone);
}
