//! Format negotiation: which wire format to send a class in, from the server's DevInf (the
//! formats its datastore receives, `Rx-Pref` first) and the formats the phone can write.

use syncml::devinf::{ContentTypeVersion, DevInf};

use crate::item::WireFormat;

fn same(ct: &ContentTypeVersion, f: WireFormat) -> bool {
    ct.ct_type.eq_ignore_ascii_case(f.mime()) && (ct.ver_ct.is_empty() || ct.ver_ct == f.version())
}

fn normalise(uri: &str) -> &str {
    uri.trim_start_matches("./").trim_end_matches('/')
}

/// Pick the format for the server database `remote_uri`: the server's preferred receive format
/// if the phone can write it, else the first of the phone's `candidates` (preferred first) the
/// server lists as received, else the phone's first choice (the server's answer will tell).
pub fn choose(candidates: &[WireFormat], server: Option<&DevInf>, remote_uri: &str) -> WireFormat {
    let fallback = candidates[0];
    let Some(store) = server.and_then(|d| d.data_stores.iter().find(|s| normalise(&s.source_ref) == normalise(remote_uri)))
    else {
        return fallback;
    };
    if let Some(pref) = &store.rx_pref {
        if let Some(f) = candidates.iter().find(|f| same(pref, **f)) {
            return *f;
        }
    }
    candidates.iter().copied().find(|f| store.rx.iter().any(|ct| same(ct, *f))).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncml::devinf::DataStore;
    use syncml::types::{Command, ItemData};

    fn recorded_server_devinf() -> DevInf {
        let msg = syncml::codec::xml::decode(include_bytes!("testdata/server-devinf-syncevolution.xml")).unwrap();
        msg.body
            .iter()
            .find_map(|c| match c {
                Command::Results(r) => r.items.iter().find_map(|i| match &i.data {
                    Some(ItemData::DevInf(d)) => Some((**d).clone()),
                    _ => None,
                }),
                _ => None,
            })
            .expect("the recorded server reply carries its DevInf")
    }

    const CONTACTS: [WireFormat; 2] = [WireFormat::VCard30, WireFormat::VCard21];

    #[test]
    fn follows_the_recorded_server_preference() {
        let d = recorded_server_devinf();
        assert_eq!(choose(&CONTACTS, Some(&d), "contacts"), WireFormat::VCard30);
        assert_eq!(choose(&CONTACTS, Some(&d), "./contacts"), WireFormat::VCard30);
        // unknown database: the phone's first choice
        assert_eq!(choose(&CONTACTS, Some(&d), "addressbook"), WireFormat::VCard30);
        assert_eq!(choose(&CONTACTS, None, "contacts"), WireFormat::VCard30);
    }

    #[test]
    fn a_server_that_prefers_vcard21_gets_vcard21() {
        let mut d = recorded_server_devinf();
        let s = d.data_stores.iter_mut().find(|s| s.source_ref.ends_with("contacts")).unwrap();
        s.rx_pref = Some(ContentTypeVersion::new("text/x-vcard", "2.1"));
        s.rx = vec![ContentTypeVersion::new("text/vcard", "3.0")];
        assert_eq!(choose(&CONTACTS, Some(&d), "contacts"), WireFormat::VCard21);
        // only 2.1 listed (not preferred)
        let only21 = DevInf {
            data_stores: vec![DataStore {
                source_ref: "card".into(),
                rx_pref: Some(ContentTypeVersion::new("text/x-unknown", "9")),
                rx: vec![ContentTypeVersion::new("TEXT/X-VCARD", "2.1")],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(choose(&CONTACTS, Some(&only21), "card"), WireFormat::VCard21);
    }
}
