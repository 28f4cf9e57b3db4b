//! Device information (DevInf 1.2, `syncml:devinf`) model.
//!
//! DevInf travels inside `Put`/`Results` Item `Data` as a nested
//! `<DevInf xmlns='syncml:devinf'>` document (see `codec`). Unknown DevInf
//! elements (DSMem, Filter-Rx, Ext, ...) are ignored on decode.

/// The DevInf of a device (client or server).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DevInf {
    /// `VerDTD`, "1.2".
    pub ver_dtd: String,
    pub man: Option<String>,
    pub mod_: Option<String>,
    pub oem: Option<String>,
    pub fw_v: Option<String>,
    pub sw_v: Option<String>,
    pub hw_v: Option<String>,
    pub dev_id: String,
    /// `DevTyp`: phone, smartphone, workstation, server, ...
    pub dev_typ: String,
    pub utc: bool,
    pub support_large_objs: bool,
    pub support_number_of_changes: bool,
    pub data_stores: Vec<DataStore>,
}

/// A content type with version (`Rx-Pref`, `Rx`, `Tx-Pref`, `Tx`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentTypeVersion {
    pub ct_type: String,
    pub ver_ct: String,
}

impl ContentTypeVersion {
    pub fn new(ct_type: impl Into<String>, ver_ct: impl Into<String>) -> Self {
        ContentTypeVersion { ct_type: ct_type.into(), ver_ct: ver_ct.into() }
    }
}

/// A `DataStore`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataStore {
    pub source_ref: String,
    pub display_name: Option<String>,
    pub max_guid_size: Option<u32>,
    pub rx_pref: Option<ContentTypeVersion>,
    pub rx: Vec<ContentTypeVersion>,
    pub tx_pref: Option<ContentTypeVersion>,
    pub tx: Vec<ContentTypeVersion>,
    pub ct_caps: Vec<CtCap>,
    /// `SyncCap/SyncType` values (1 = two-way, 2 = slow, ... 7 = server alerted).
    pub sync_types: Vec<u32>,
}

impl DataStore {
    /// All content types this store accepts (Rx-Pref first, then Rx).
    pub fn rx_types(&self) -> impl Iterator<Item = &ContentTypeVersion> {
        self.rx_pref.iter().chain(self.rx.iter())
    }
    /// All content types this store sends (Tx-Pref first, then Tx).
    pub fn tx_types(&self) -> impl Iterator<Item = &ContentTypeVersion> {
        self.tx_pref.iter().chain(self.tx.iter())
    }
}

/// `CTCap`: capabilities for one content type (DevInf 1.2 layout).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtCap {
    pub ct_type: String,
    pub ver_ct: String,
    pub field_level: bool,
    pub properties: Vec<Property>,
}

/// A CTCap `Property`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Property {
    pub name: String,
    pub data_type: Option<String>,
    pub max_occur: Option<u32>,
    pub max_size: Option<u32>,
    pub no_truncate: bool,
    pub val_enums: Vec<String>,
    pub display_name: Option<String>,
    pub params: Vec<PropParam>,
}

/// A Property's `PropParam`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropParam {
    pub name: String,
    pub data_type: Option<String>,
    pub val_enums: Vec<String>,
    pub display_name: Option<String>,
}

impl DevInf {
    /// Find a datastore by its SourceRef, tolerating a missing or extra `./`.
    pub fn data_store(&self, source_ref: &str) -> Option<&DataStore> {
        let want = source_ref.trim_start_matches("./");
        self.data_stores.iter().find(|d| d.source_ref.trim_start_matches("./") == want)
    }
}
