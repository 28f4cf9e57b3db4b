//! Operator provisioning over D-Bus: a valid OMA Client Provisioning document (APPLICATION
//! w5 with four RESOURCEs) creates a working profile that backs up to the test server; ten
//! broken documents each give `org.imsync.Error.InvalidProvisioning` naming the problem and
//! change nothing; `imsync provision FILE --account A` does the same from the command line.
//! (The parser's own cases are unit tests in `service/src/profile/provisioning.rs`.)

mod common;

use std::process::{Command, Stdio};

use common::{describe, list_accounts};
use harness::sync1;
use harness::TestEnv;

const ACCOUNT: &str = "xmpp:alice@example.org";

fn document(addr: &str, user: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE wap-provisioningdoc PUBLIC "-//WAPFORUM//DTD PROV 1.0//EN" "http://www.wapforum.org/DTD/prov.dtd">
<wap-provisioningdoc version="1.1">
  <characteristic type="APPLICATION">
    <parm name="APPID" value="w5"/>
    <parm name="NAME" value="Test operator backup"/>
    <parm name="ADDR" value="{addr}"/>
    <characteristic type="APPAUTH">
      <parm name="AAUTHLEVEL" value="APPSRV"/>
      <parm name="AAUTHNAME" value="{user}"/>
      <parm name="AAUTHSECRET" value="{password}"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="contacts"/><parm name="NAME" value="Contacts"/><parm name="AACCEPT" value="text/x-vcard"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="calendar"/><parm name="NAME" value="Calendar"/><parm name="AACCEPT" value="text/x-vcalendar"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="tasks"/><parm name="NAME" value="Tasks"/><parm name="AACCEPT" value="text/x-vcalendar"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="notes"/><parm name="NAME" value="Notes"/><parm name="AACCEPT" value="text/plain"/>
    </characteristic>
  </characteristic>
</wap-provisioningdoc>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_creates_a_working_profile_and_broken_documents_change_nothing() {
    let env = TestEnv::new("provisioning").await.unwrap();
    let srv = env.server();
    env.remember_secret(srv.username(), srv.password());
    let sync = env.phone.sync1().await.unwrap();
    let good = document(srv.url(), srv.username(), srv.password());

    // --- ten broken documents: a specific error each, no account appears
    let w5 = |body: &str| {
        format!(r#"<wap-provisioningdoc><characteristic type="APPLICATION"><parm name="APPID" value="w5"/>{body}</characteristic></wap-provisioningdoc>"#)
    };
    let addr = format!(r#"<parm name="ADDR" value="{}"/>"#, srv.url());
    let res = r#"<characteristic type="RESOURCE"><parm name="URI" value="contacts"/><parm name="AACCEPT" value="text/x-vcard"/></characteristic>"#;
    let broken: Vec<(&str, String, &str)> = vec![
        ("not XML", "this is not a provisioning document".into(), "not well-formed XML"),
        ("truncated", good[..good.len() / 2].to_string(), "not well-formed XML"),
        ("other root", "<html><body>hello</body></html>".into(), "root element is <html>"),
        (
            "only an unknown APPID",
            r#"<wap-provisioningdoc><characteristic type="APPLICATION"><parm name="APPID" value="w4"/></characteristic></wap-provisioningdoc>"#.into(),
            "no APPLICATION characteristic with APPID w5",
        ),
        ("missing ADDR", w5(res), "has no ADDR"),
        ("bad server URL", w5(&format!(r#"<parm name="ADDR" value="ftp://sync.example.org/"/>{res}"#)), "is not a usable server URL"),
        (
            "RESOURCE without URI",
            w5(&format!(r#"{addr}<characteristic type="RESOURCE"><parm name="NAME" value="Contacts"/></characteristic>"#)),
            "has no URI",
        ),
        (
            "bad URI",
            w5(&format!(r#"{addr}<characteristic type="RESOURCE"><parm name="URI" value="my contacts"/></characteristic>"#)),
            "is not a usable database name",
        ),
        (
            "unknown class",
            w5(&format!(r#"{addr}<characteristic type="RESOURCE"><parm name="URI" value="pics"/><parm name="AACCEPT" value="image/jpeg"/></characteristic>"#)),
            "image/jpeg",
        ),
        ("no RESOURCE", w5(&addr), "has no RESOURCE"),
        ("two resources for contacts", w5(&format!("{addr}{res}{res}")), "are both for contacts"),
        (
            "secret without name",
            w5(&format!(r#"{addr}<characteristic type="APPAUTH"><parm name="AAUTHSECRET" value="{}"/></characteristic>{res}"#, srv.password())),
            "AAUTHSECRET is given without AAUTHNAME",
        ),
    ];
    assert!(broken.len() >= 10);
    for (what, doc, expected) in &broken {
        let e = sync.proxy().call::<_, _, ()>("ImportProvisioning", &(ACCOUNT, doc.as_str())).await.unwrap_err();
        assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidProvisioning"), "{what}: {e}");
        let msg = sync1::error_message(&e);
        assert!(msg.contains(expected), "{what}: message {msg:?} should name the problem ({expected:?})");
        assert!(!msg.contains(srv.password()), "{what}: the password is in the error");
    }
    assert!(list_accounts(&sync).await.is_empty(), "broken documents create no account");
    let e = sync.proxy().call::<_, _, ()>("ImportProvisioning", &("no-colon", good.as_str())).await.unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidArgs"), "{e}");

    // --- the valid document creates a working profile
    sync.proxy().call::<_, _, ()>("ImportProvisioning", &(ACCOUNT, good.as_str())).await.expect("ImportProvisioning");
    let acc = sync.get_account_json().await.unwrap();
    assert_eq!(acc["account"], ACCOUNT);
    assert_eq!(acc["server_url"], srv.url());
    assert_eq!(acc["username"], srv.username());
    assert_eq!(acc["has_password"], true);
    for c in ["contacts", "calendar", "tasks", "notes"] {
        assert_eq!(acc[format!("{c}.enabled")], true, "{c}: {acc:#}");
        assert_eq!(acc[format!("{c}.uri")], c, "{c}: {acc:#}");
    }
    for c in ["sms", "roster"] {
        assert_eq!(acc[format!("{c}.enabled")], false, "{c} has no RESOURCE: {acc:#}");
    }
    let specs = env.contacts(5);
    env.phone.seed(&specs).await.unwrap();
    let o = sync.run_backup(common::JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    for c in ["contacts", "calendar", "tasks", "notes"] {
        assert!(o.report.classes.contains_key(c), "{c} took part: {}", describe(&o));
    }
    assert_eq!(o.report.class("contacts").added, 5, "{}", describe(&o));
    env.assert_server_contacts(&specs, true);

    // --- broken documents for the existing account change nothing either
    let before = sync.get_account_json().await.unwrap();
    for (what, doc, _) in &broken {
        let e = sync.proxy().call::<_, _, ()>("ImportProvisioning", &(ACCOUNT, doc.as_str())).await.unwrap_err();
        assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidProvisioning"), "{what}: {e}");
    }
    assert_eq!(sync.get_account_json().await.unwrap(), before);
    assert_eq!(list_accounts(&sync).await.len(), 1);

    // --- the CLI: imsync provision FILE --account A (another account, same server)
    let file = env.root().join("operator.xml");
    std::fs::write(&file, good.replace("<parm name=\"URI\" value=\"notes\"/>", "<parm name=\"URI\" value=\"memos\"/>")).unwrap();
    let out = Command::new(harness::daemon::workspace_binary("imsync").expect("imsync binary"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SESSION_BUS_ADDRESS", env.phone.bus.address())
        .env("LANG", "C.UTF-8")
        .args(["provision", file.to_str().unwrap(), "--account", "matrix:@alice:example.org"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "imsync provision: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let m = common::account_named(&sync, "matrix:@alice:example.org").await;
    let classes: std::collections::HashMap<String, zbus::zvariant::OwnedValue> = m.get_property("Classes").await.unwrap();
    assert_eq!(String::try_from(classes["notes.uri"].try_clone().unwrap()).unwrap(), "memos");
    let bad = env.root().join("bad.xml");
    std::fs::write(&bad, "<html/>").unwrap();
    let out = Command::new(harness::daemon::workspace_binary("imsync").unwrap())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SESSION_BUS_ADDRESS", env.phone.bus.address())
        .args(["provision", bad.to_str().unwrap(), "--account", "matrix:@alice:example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("org.imsync.Error.InvalidProvisioning"), "{}", String::from_utf8_lossy(&out.stderr));

    env.assert_no_secrets_leaked(&env.phone);
}
