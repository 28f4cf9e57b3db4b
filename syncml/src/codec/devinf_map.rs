//! Mapping between the element tree and the DevInf 1.2 model
//! ([`crate::devinf`]). Unknown DevInf elements are ignored on decode.

use super::element::Element;
use super::DecodeError;
use crate::devinf::*;

pub const NS_DEVINF: &str = "syncml:devinf";

pub fn devinf_from(el: &Element) -> Result<DevInf, DecodeError> {
    let mut data_stores = Vec::new();
    for ds in el.children_named("DataStore") {
        data_stores.push(data_store_from(ds)?);
    }
    Ok(DevInf {
        ver_dtd: el.child_string("VerDTD").unwrap_or_default(),
        man: el.child_string("Man"),
        mod_: el.child_string("Mod"),
        oem: el.child_string("OEM"),
        fw_v: el.child_string("FwV"),
        sw_v: el.child_string("SwV"),
        hw_v: el.child_string("HwV"),
        dev_id: el.child_string("DevID").unwrap_or_default(),
        dev_typ: el.child_string("DevTyp").unwrap_or_default(),
        utc: el.has("UTC"),
        support_large_objs: el.has("SupportLargeObjs"),
        support_number_of_changes: el.has("SupportNumberOfChanges"),
        data_stores,
    })
}

fn ctv_from(el: &Element) -> ContentTypeVersion {
    ContentTypeVersion {
        ct_type: el.child_string("CTType").unwrap_or_default(),
        ver_ct: el.child_string("VerCT").unwrap_or_default(),
    }
}

fn val_enums(el: &Element) -> Vec<String> {
    el.children_named("ValEnum").map(|v| v.text.to_string()).collect()
}

fn data_store_from(el: &Element) -> Result<DataStore, DecodeError> {
    let mut ct_caps = Vec::new();
    for cap in el.children_named("CTCap") {
        let mut properties = Vec::new();
        for p in cap.children_named("Property") {
            properties.push(Property {
                name: p.child_string("PropName").unwrap_or_default(),
                data_type: p.child_string("DataType"),
                max_occur: p.child_number("MaxOccur")?,
                max_size: p.child_number("MaxSize")?,
                no_truncate: p.has("NoTruncate"),
                val_enums: val_enums(p),
                display_name: p.child_string("DisplayName"),
                params: p
                    .children_named("PropParam")
                    .map(|pp| PropParam {
                        name: pp.child_string("ParamName").unwrap_or_default(),
                        data_type: pp.child_string("DataType"),
                        val_enums: val_enums(pp),
                        display_name: pp.child_string("DisplayName"),
                    })
                    .collect(),
            });
        }
        ct_caps.push(CtCap {
            ct_type: cap.child_string("CTType").unwrap_or_default(),
            ver_ct: cap.child_string("VerCT").unwrap_or_default(),
            field_level: cap.has("FieldLevel"),
            properties,
        });
    }
    let mut sync_types = Vec::new();
    if let Some(sc) = el.child("SyncCap") {
        for st in sc.children_named("SyncType") {
            sync_types.push(st.number()?);
        }
    }
    Ok(DataStore {
        source_ref: el.child_string("SourceRef").unwrap_or_default(),
        display_name: el.child_string("DisplayName"),
        max_guid_size: el.child_number("MaxGUIDSize")?,
        rx_pref: el.child("Rx-Pref").map(ctv_from),
        rx: el.children_named("Rx").map(ctv_from).collect(),
        tx_pref: el.child("Tx-Pref").map(ctv_from),
        tx: el.children_named("Tx").map(ctv_from).collect(),
        ct_caps,
        sync_types,
    })
}

fn ctv_to<'a>(name: &'static str, c: &'a ContentTypeVersion) -> Element<'a> {
    let mut e = Element::with_capacity(name, 2);
    e.push_leaf("CTType", c.ct_type.as_str());
    e.push_leaf("VerCT", c.ver_ct.as_str());
    e
}

pub fn devinf_to_element(d: &DevInf) -> Element<'_> {
    let mut e = Element::new("DevInf").with_ns(NS_DEVINF);
    e.push_leaf("VerDTD", d.ver_dtd.as_str());
    e.push_opt_leaf("Man", d.man.as_deref());
    e.push_opt_leaf("Mod", d.mod_.as_deref());
    e.push_opt_leaf("OEM", d.oem.as_deref());
    e.push_opt_leaf("FwV", d.fw_v.as_deref());
    e.push_opt_leaf("SwV", d.sw_v.as_deref());
    e.push_opt_leaf("HwV", d.hw_v.as_deref());
    e.push_leaf("DevID", d.dev_id.as_str());
    e.push_leaf("DevTyp", d.dev_typ.as_str());
    e.push_flag("UTC", d.utc);
    e.push_flag("SupportLargeObjs", d.support_large_objs);
    e.push_flag("SupportNumberOfChanges", d.support_number_of_changes);
    for ds in &d.data_stores {
        let mut s = Element::new("DataStore");
        s.push_leaf("SourceRef", ds.source_ref.as_str());
        s.push_opt_leaf("DisplayName", ds.display_name.as_deref());
        if let Some(n) = ds.max_guid_size {
            s.push_leaf("MaxGUIDSize", n.to_string());
        }
        if let Some(c) = &ds.rx_pref {
            s.push(ctv_to("Rx-Pref", c));
        }
        for c in &ds.rx {
            s.push(ctv_to("Rx", c));
        }
        if let Some(c) = &ds.tx_pref {
            s.push(ctv_to("Tx-Pref", c));
        }
        for c in &ds.tx {
            s.push(ctv_to("Tx", c));
        }
        for cap in &ds.ct_caps {
            let mut ce = Element::new("CTCap");
            ce.push_leaf("CTType", cap.ct_type.as_str());
            ce.push_leaf("VerCT", cap.ver_ct.as_str());
            ce.push_flag("FieldLevel", cap.field_level);
            for p in &cap.properties {
                let mut pe = Element::new("Property");
                pe.push_leaf("PropName", p.name.as_str());
                pe.push_opt_leaf("DataType", p.data_type.as_deref());
                if let Some(n) = p.max_occur {
                    pe.push_leaf("MaxOccur", n.to_string());
                }
                if let Some(n) = p.max_size {
                    pe.push_leaf("MaxSize", n.to_string());
                }
                pe.push_flag("NoTruncate", p.no_truncate);
                for v in &p.val_enums {
                    pe.push_leaf("ValEnum", v.as_str());
                }
                pe.push_opt_leaf("DisplayName", p.display_name.as_deref());
                for pp in &p.params {
                    let mut ppe = Element::new("PropParam");
                    ppe.push_leaf("ParamName", pp.name.as_str());
                    ppe.push_opt_leaf("DataType", pp.data_type.as_deref());
                    for v in &pp.val_enums {
                        ppe.push_leaf("ValEnum", v.as_str());
                    }
                    ppe.push_opt_leaf("DisplayName", pp.display_name.as_deref());
                    pe.push(ppe);
                }
                ce.push(pe);
            }
            s.push(ce);
        }
        if !ds.sync_types.is_empty() {
            let mut sc = Element::new("SyncCap");
            for t in &ds.sync_types {
                sc.push_leaf("SyncType", t.to_string());
            }
            s.push(sc);
        }
        e.push(s);
    }
    e
}
