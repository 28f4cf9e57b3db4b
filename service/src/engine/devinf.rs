//! The device information imsync announces to the server.

use syncml::devinf::{ContentTypeVersion, DataStore, DevInf};

use crate::class::DataClass;
use crate::item::WireFormat;

fn ctv(f: WireFormat) -> ContentTypeVersion {
    ContentTypeVersion { ct_type: f.mime().to_string(), ver_ct: f.version().to_string() }
}

/// The other formats the phone reads and writes for `class`.
fn others(class: DataClass, preferred: WireFormat) -> Vec<ContentTypeVersion> {
    crate::item::formats_for(class).iter().filter(|f| **f != preferred).map(|f| ctv(*f)).collect()
}

/// Our DevInf: who we are, and per class in the session the datastore with the formats we send
/// and accept.
pub fn client_devinf(device_id: &str, stores: &[(DataClass, WireFormat)]) -> DevInf {
    DevInf {
        ver_dtd: "1.2".into(),
        man: Some("imsync".into()),
        mod_: Some("imsyncd".into()),
        oem: None,
        fw_v: None,
        sw_v: Some(env!("CARGO_PKG_VERSION").into()),
        hw_v: None,
        dev_id: device_id.to_string(),
        dev_typ: "smartphone".into(),
        utc: true,
        // Items larger than a message go out in chunks, and come in reassembled.
        support_large_objs: true,
        support_number_of_changes: true,
        data_stores: stores
            .iter()
            .map(|(class, format)| DataStore {
                source_ref: format!("./{}", class.as_str()),
                display_name: Some(class.as_str().to_string()),
                max_guid_size: Some(32),
                rx_pref: Some(ctv(*format)),
                rx: others(*class, *format),
                tx_pref: Some(ctv(*format)),
                tx: others(*class, *format),
                ct_caps: Vec::new(),
                // two-way, slow, one-way and refresh from either side
                sync_types: vec![1, 2, 3, 4, 5, 6, 7],
            })
            .collect(),
    }
}

/// How long a server's DevInf is trusted before a session asks for it again (a server can
/// be upgraded, and start accepting other formats).
const THEIRS_FRESH_FOR: i64 = 7 * 24 * 3600;

/// The DevInf a session sends and asks for, given what the server already has of ours and
/// what we kept of theirs.
pub(super) struct Exchange {
    pub ours: DevInf,
    /// Put ours in package 1 (the server does not have this very one yet).
    pub send_ours: bool,
    /// Theirs, known and fresh: no Get in package 1.
    pub known_theirs: Option<DevInf>,
    ours_digest: [u8; 16],
}

impl Exchange {
    /// For a session with `server_url` about `remote_uris`. With `use_cache` false (restore:
    /// the server must pick the formats it sends us from our current DevInf) both go out.
    pub fn plan(
        ours: DevInf,
        cache: Option<crate::profile::store::DevInfCache>,
        server_url: &str,
        remote_uris: &[&str],
        use_cache: bool,
        now: i64,
    ) -> Exchange {
        let ours_digest = super::tracker::digest(&syncml::codec::xml::encode_devinf(&ours));
        let cache = cache.filter(|c| use_cache && c.server_url == server_url);
        let send_ours = cache.as_ref().and_then(|c| c.ours_digest.as_deref()) != Some(ours_digest.as_slice());
        let known_theirs = cache
            .filter(|c| now.saturating_sub(c.theirs_at) < THEIRS_FRESH_FOR)
            .and_then(|c| c.theirs)
            .and_then(|xml| syncml::codec::xml::decode_devinf(&xml).ok())
            // a database it did not list when it was received: ask again
            .filter(|d| remote_uris.iter().all(|u| d.data_store(u).is_some()));
        Exchange { ours, send_ours, known_theirs, ours_digest }
    }

    /// What to record after the session ended well: the server's DevInf if it is new to us,
    /// and the digest of ours if we sent it.
    pub fn learned(&self, report: &syncml::session::SessionReport) -> (Option<Vec<u8>>, Option<[u8; 16]>) {
        let theirs = report
            .server_devinf
            .as_ref()
            .filter(|d| self.known_theirs.as_ref() != Some(*d))
            .map(syncml::codec::xml::encode_devinf);
        (theirs, self.send_ours.then_some(self.ours_digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::store::DevInfCache;

    fn theirs() -> DevInf {
        DevInf {
            ver_dtd: "1.2".into(),
            dev_id: "srv".into(),
            dev_typ: "server".into(),
            data_stores: vec![DataStore { source_ref: "contacts".into(), ..DataStore::default() }],
            ..DevInf::default()
        }
    }

    #[test]
    fn a_known_exchange_is_left_out_and_a_stale_or_partial_one_is_not() {
        let ours = client_devinf("dev", &[(DataClass::Contacts, WireFormat::VCard30)]);
        let url = "https://srv/sync";
        let first = Exchange::plan(ours.clone(), None, url, &["contacts"], true, 1000);
        assert!(first.send_ours && first.known_theirs.is_none());
        let report = syncml::session::SessionReport { server_devinf: Some(theirs()), ..Default::default() };
        let (t, o) = first.learned(&report);
        let cache = DevInfCache { server_url: url.into(), theirs: t, theirs_at: 1000, ours_digest: o.map(|d| d.to_vec()) };

        let next = Exchange::plan(ours.clone(), Some(cache.clone()), url, &["contacts"], true, 2000);
        assert!(!next.send_ours);
        assert_eq!(next.known_theirs, Some(theirs()));
        // nothing new to record after a session that used what was known
        let (t, o) = next.learned(&syncml::session::SessionReport { server_devinf: Some(theirs()), ..Default::default() });
        assert!(t.is_none() && o.is_none());

        // our DevInf changed (another class): sent again
        let more = client_devinf("dev", &[(DataClass::Contacts, WireFormat::VCard30), (DataClass::Notes, WireFormat::PlainText)]);
        assert!(Exchange::plan(more, Some(cache.clone()), url, &["contacts"], true, 2000).send_ours);
        // a database the server did not list, another URL, a week later, a restore: asked again
        assert!(Exchange::plan(ours.clone(), Some(cache.clone()), url, &["contacts", "notes"], true, 2000).known_theirs.is_none());
        let other = Exchange::plan(ours.clone(), Some(cache.clone()), "https://other/sync", &["contacts"], true, 2000);
        assert!(other.send_ours && other.known_theirs.is_none());
        assert!(Exchange::plan(ours.clone(), Some(cache.clone()), url, &["contacts"], true, 1000 + THEIRS_FRESH_FOR).known_theirs.is_none());
        let restore = Exchange::plan(ours, Some(cache), url, &["contacts"], false, 2000);
        assert!(restore.send_ours && restore.known_theirs.is_none());
    }
}
