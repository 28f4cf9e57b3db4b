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
