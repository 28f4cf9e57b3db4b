//! The device information imsync announces to the server.

use syncml::devinf::{ContentTypeVersion, DataStore, DevInf};

use crate::class::DataClass;
use crate::item::WireFormat;

fn ctv(f: WireFormat) -> ContentTypeVersion {
    ContentTypeVersion { ct_type: f.mime().to_string(), ver_ct: f.version().to_string() }
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
        support_large_objs: false,
        support_number_of_changes: true,
        data_stores: stores
            .iter()
            .map(|(class, format)| DataStore {
                source_ref: format!("./{}", class.as_str()),
                display_name: Some(class.as_str().to_string()),
                max_guid_size: Some(32),
                rx_pref: Some(ctv(*format)),
                rx: Vec::new(),
                tx_pref: Some(ctv(*format)),
                tx: Vec::new(),
                ct_caps: Vec::new(),
                // two-way, slow, one-way and refresh from either side
                sync_types: vec![1, 2, 3, 4, 5, 6, 7],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
