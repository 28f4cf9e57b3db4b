//! SetAccount input validation (acceptance criterion 6): bad input gets
//! `org.imsync.Error.InvalidArgs` naming the key, and nothing is stored.

use std::collections::HashMap;

use harness::sync1::{self, error_message, error_name};
use harness::{EnvOptions, TestEnv};
use zbus::zvariant::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_set_account_input_is_rejected_and_changes_nothing() {
    let opts = EnvOptions { server: false, ..Default::default() };
    let env = TestEnv::with_options("set-account", opts).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();

    let (user, password) = ("user-valid", harness::random_token("pw", 20));
    env.remember_secret(user, &password);
    let valid = sync1::contacts_account("http://127.0.0.1:9/syncevolution", user, &password);
    sync.set_account(&valid).await.expect("valid SetAccount");
    let before = sync.get_account_json().await.unwrap();
    eprintln!("GetAccount: {before:#}");
    assert!(before.get("password").is_none(), "GetAccount must not return the password: {before:#}");
    assert_eq!(before.get("has_password"), Some(&serde_json::json!(true)), "{before:#}");
    assert_eq!(before.get("server_url"), Some(&serde_json::json!("http://127.0.0.1:9/syncevolution")));
    assert_eq!(before.get("contacts.enabled"), Some(&serde_json::json!(true)), "{before:#}");

    // every bad input also carries otherwise valid changes: none may stick
    let other_password = harness::random_token("pw", 20);
    env.remember_secret(user, &other_password);
    let base = |key: &'static str, v: Value<'static>| {
        let mut d: HashMap<&str, Value> = HashMap::new();
        for (key, val) in &valid {
            d.insert(key.as_str(), Value::try_from(&**val).unwrap());
        }
        d.insert("display_name", Value::from("CHANGED"));
        d.insert("password", Value::from(other_password.clone()));
        d.insert("server_url", Value::from("http://127.0.0.1:10/changed"));
        d.insert(key, v);
        d
    };
    let cases: Vec<(&str, HashMap<&str, Value>, &str)> = vec![
        ("unknown key", base("frobnicate", Value::from("x")), "frobnicate"),
        ("unknown class key", base("videos.enabled", Value::from(true)), "videos.enabled"),
        ("wrong type (u for s)", base("server_url", Value::from(42u32)), "server_url"),
        ("wrong type (s for b)", base("contacts.enabled", Value::from("true")), "contacts.enabled"),
        ("wrong type (b for s)", base("username", Value::from(true)), "username"),
        ("ftp URL", base("server_url", Value::from("ftp://x")), "server_url"),
        ("not a URL", base("server_url", Value::from("not a url")), "server_url"),
        ("unknown mode", base("contacts.mode", Value::from("sideways")), "contacts.mode"),
    ];
    for (what, input, key) in cases {
        let err = sync.set_account_values(input).await.expect_err(what);
        assert_eq!(error_name(&err).as_deref(), Some("org.imsync.Error.InvalidArgs"), "{what}: {err:?}");
        assert!(error_message(&err).contains(key), "{what}: the error must name {key:?}: {:?}", error_message(&err));
        let after = sync.get_account_json().await.unwrap();
        assert_eq!(after, before, "{what}: GetAccount changed");
    }
    env.assert_no_secrets_leaked(&env.phone);
}
