//! SyncML WBXML encoding (`application/vnd.syncml+wbxml`, WBXML 1.2 as used
//! by OMA DS 1.1/1.2).
//!
//! Maps bytes to and from the same [`Element`] tree as the XML codec, so the
//! model mapping (`syncml_map`, `devinf_map`) is shared.
//!
//! * Public ids: SyncML 1.2 `0x1201`, MetInf 1.2 `0x1202`, DevInf 1.2
//!   `0x1203`; SyncML 1.1 `0x0FD3`, DevInf 1.1 `0x0FD4`; SyncML 1.0 `0x0FD1`,
//!   DevInf 1.0 `0x0FD2`; a literal public id from the string table is
//!   accepted too (`-//SYNCML//DTD SyncML 1.2//EN`, ...).
//! * Code pages: SyncML (page 0) and MetInf (page 1) in a SyncML document;
//!   DevInf (page 0) in a DevInf document. A DevInf inside `Data` travels as a
//!   nested WBXML document in `OPAQUE` and is decoded into a `DevInf` child
//!   element (and encoded back that way).
//! * Decoding understands inline strings (`STR_I`), string table references
//!   (`STR_T`), `ENTITY`, `OPAQUE`, `LITERAL` tags, and skips attributes,
//!   processing instructions and extension tokens. Tags of unknown tokens
//!   become elements named `unknown-P-0xTT` (ignored by the model mapping).
//!   Non-UTF-8 strings inside `Data` are kept as bytes; elsewhere they are
//!   converted lossily.
//! * Encoding is deterministic: WBXML 1.2, charset UTF-8 (106), an empty
//!   string table (unless an element name has no token: then `LITERAL` with a
//!   string table entry), inline strings, item `Data` as `OPAQUE`, and code
//!   pages switched lazily (only before a tag on another page, as
//!   libsynthesis does). This reproduces the real server's messages byte for
//!   byte at the element-tree level (see `tests/wbxml_codec.rs`).
//!
//! Bounded like the XML decoder: nesting (including nested documents) is
//! limited to [`MAX_DEPTH`], lengths are checked against the input, and no
//! input makes it panic.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::element::{Element, TreeBuilder};
use super::{syncml_map, DecodeError, MAX_DEPTH};
use crate::types::{Command, Item, Message};

/// HTTP Content-Type of SyncML WBXML messages.
pub const CONTENT_TYPE: &str = "application/vnd.syncml+wbxml";
/// MIME type of DevInf in WBXML (Meta/Type of Put/Get/Results).
pub const DEVINF_WBXML_TYPE: &str = "application/vnd.syncml-devinf+wbxml";

/// WBXML version we write (1.2).
pub const WBXML_VERSION: u8 = 0x02;
/// IANA MIBenum of UTF-8.
pub const CHARSET_UTF8: u32 = 106;

pub const PUBLIC_ID_SYNCML_10: u32 = 0x0FD1;
pub const PUBLIC_ID_DEVINF_10: u32 = 0x0FD2;
pub const PUBLIC_ID_SYNCML_11: u32 = 0x0FD3;
pub const PUBLIC_ID_DEVINF_11: u32 = 0x0FD4;
pub const PUBLIC_ID_SYNCML_12: u32 = 0x1201;
pub const PUBLIC_ID_METINF_12: u32 = 0x1202;
pub const PUBLIC_ID_DEVINF_12: u32 = 0x1203;

const SWITCH_PAGE: u8 = 0x00;
const END: u8 = 0x01;
const ENTITY: u8 = 0x02;
const STR_I: u8 = 0x03;
const LITERAL: u8 = 0x04;
const EXT_I_0: u8 = 0x40;
const EXT_I_2: u8 = 0x42;
const PI: u8 = 0x43;
const LITERAL_C: u8 = 0x44;
const EXT_T_0: u8 = 0x80;
const EXT_T_2: u8 = 0x82;
const STR_T: u8 = 0x83;
const LITERAL_A: u8 = 0x84;
const EXT_0: u8 = 0xC0;
const EXT_2: u8 = 0xC2;
const OPAQUE: u8 = 0xC3;
const LITERAL_AC: u8 = 0xC4;

const HAS_CONTENT: u8 = 0x40;
const HAS_ATTRS: u8 = 0x80;

/// SyncML code page 0, tokens 0x05.. (OMA-TS-SyncML_RepPro 1.2, section 8).
const SYNCML_PAGE: &[&str] = &[
    "Add", "Alert", "Archive", "Atomic", "Chal", "Cmd", "CmdID", "CmdRef", "Copy", "Cred", "Data", "Delete", "Exec",
    "Final", "Get", "Item", "Lang", "LocName", "LocURI", "Map", "MapItem", "Meta", "MsgID", "MsgRef", "NoResp",
    "NoResults", "Put", "Replace", "RespURI", "Results", "Search", "Sequence", "SessionID", "SftDel", "Source",
    "SourceRef", "Status", "Sync", "SyncBody", "SyncHdr", "SyncML", "Target", "TargetRef", "", "VerDTD", "VerProto",
    "NumberOfChanges", "MoreData", "Field", "Filter", "Record", "FilterType", "SourceParent", "TargetParent", "Move",
    "Correlator",
];

/// MetInf code page 1, tokens 0x05.. (OMA-TS-SyncML_MetaInfo 1.2).
const METINF_PAGE: &[&str] = &[
    "Anchor", "EMI", "Format", "FreeID", "FreeMem", "Last", "Mark", "MaxMsgSize", "Mem", "MetInf", "Next",
    "NextNonce", "SharedMem", "Size", "Type", "Version", "MaxObjSize", "FieldLevel",
];

/// DevInf code page 0, tokens 0x05.. (OMA-TS-DS_DevInf 1.2). Token 0x1C is
/// `Size` in DevInf 1.1 and `MaxSize` in 1.2.
const DEVINF_PAGE: &[&str] = &[
    "CTCap", "CTType", "DataStore", "DataType", "DevID", "DevInf", "DevTyp", "DisplayName", "DSMem", "Ext", "FwV",
    "HwV", "Man", "MaxGUIDSize", "MaxID", "MaxMem", "Mod", "OEM", "ParamName", "PropName", "Rx", "Rx-Pref",
    "SharedMem", "MaxSize", "SourceRef", "SwV", "SyncCap", "SyncType", "Tx", "Tx-Pref", "ValEnum", "VerCT", "VerDTD",
    "XNam", "XVal", "UTC", "SupportNumberOfChanges", "SupportLargeObjs", "Property", "PropParam", "MaxOccur",
    "NoTruncate", "", "Filter-Rx", "FilterCap", "FilterKeyword", "FieldLevel", "SupportHierarchicalSync",
];

/// Which token tables apply to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// SyncML (page 0) + MetInf (page 1).
    SyncMl,
    /// DevInf (page 0).
    DevInf,
}

/// A document's public identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicId {
    Known(u32),
    /// Given as a string table reference (public id 0).
    Literal(String),
}

/// The WBXML document header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub public_id: PublicId,
    pub charset: u32,
    pub string_table: Vec<u8>,
}

impl Header {
    pub fn language(&self) -> Language {
        match &self.public_id {
            PublicId::Known(PUBLIC_ID_DEVINF_10 | PUBLIC_ID_DEVINF_11 | PUBLIC_ID_DEVINF_12) => Language::DevInf,
            PublicId::Literal(s) if s.contains("DevInf") => Language::DevInf,
            _ => Language::SyncMl,
        }
    }
    fn devinf_11(&self) -> bool {
        match &self.public_id {
            PublicId::Known(id) => *id == PUBLIC_ID_DEVINF_11 || *id == PUBLIC_ID_DEVINF_10,
            PublicId::Literal(s) => s.contains("DevInf 1.1") || s.contains("DevInf 1.0"),
        }
    }
}

fn token_name(lang: Language, page: u8, token: u8, devinf_11: bool) -> Option<&'static str> {
    let idx = usize::from(token).checked_sub(5)?;
    let name = match (lang, page) {
        (Language::SyncMl, 0) => SYNCML_PAGE.get(idx),
        (Language::SyncMl, 1) => METINF_PAGE.get(idx),
        (Language::DevInf, 0) => DEVINF_PAGE.get(idx),
        _ => None,
    }
    .copied()
    .filter(|n| !n.is_empty())?;
    Some(if devinf_11 && name == "MaxSize" { "Size" } else { name })
}

/// (page, token) of an element name.
pub fn token_of(lang: Language, name: &str) -> Option<(u8, u8)> {
    static SYNCML: OnceLock<NameTable<(u8, u8)>> = OnceLock::new();
    static DEVINF: OnceLock<NameTable<(u8, u8)>> = OnceLock::new();
    let table = match lang {
        Language::SyncMl => {
            SYNCML.get_or_init(|| NameTable::new(page_tokens(0, SYNCML_PAGE).chain(page_tokens(1, METINF_PAGE))))
        }
        Language::DevInf => {
            DEVINF.get_or_init(|| NameTable::new(page_tokens(0, DEVINF_PAGE).chain([("Size", (0, 0x1C))])))
        }
    };
    table.get(name).map(|(_, t)| t)
}

/// The names of a code page with their (page, token).
fn page_tokens(page: u8, table: &'static [&'static str]) -> impl Iterator<Item = (&'static str, (u8, u8))> {
    table.iter().enumerate().filter(|(_, n)| !n.is_empty()).map(move |(i, n)| (*n, (page, i as u8 + 5)))
}

/// The static name equal to `name` if it is an element name of SyncML,
/// MetInf or DevInf (so that decoded trees need not allocate their names).
pub(crate) fn static_name(name: &str) -> Option<&'static str> {
    static NAMES: OnceLock<NameTable<()>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        NameTable::new([SYNCML_PAGE, METINF_PAGE, DEVINF_PAGE, &["Size"]].concat().into_iter().map(|n| (n, ())))
    });
    names.get(name).map(|(n, _)| n)
}

/// A small hash table of static element names (FNV-1a, open addressing):
/// one hash and (usually) one comparison per lookup, where a search of the
/// code pages compared dozens of names for every element encoded.
struct NameTable<V> {
    slots: Vec<Option<(&'static str, V)>>,
}

impl<V: Copy> NameTable<V> {
    /// Power of two, well above the ~75 names of a language.
    const SLOTS: usize = 512;

    /// The first of equal names wins (as a search of the pages in order
    /// finds it); empty names (unassigned tokens) are left out.
    fn new(entries: impl IntoIterator<Item = (&'static str, V)>) -> Self {
        let mut t = NameTable { slots: vec![None; Self::SLOTS] };
        for (name, v) in entries {
            if name.is_empty() {
                continue;
            }
            let mut i = Self::hash(name);
            loop {
                match &t.slots[i] {
                    Some((n, _)) if *n == name => break,
                    Some(_) => i = (i + 1) % Self::SLOTS,
                    None => {
                        t.slots[i] = Some((name, v));
                        break;
                    }
                }
            }
        }
        t
    }

    fn hash(name: &str) -> usize {
        let h = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        h as usize % Self::SLOTS
    }

    fn get(&self, name: &str) -> Option<(&'static str, V)> {
        let mut i = Self::hash(name);
        loop {
            match self.slots[i] {
                Some((n, v)) if n == name => return Some((n, v)),
                Some(_) => i = (i + 1) % Self::SLOTS,
                None => return None,
            }
        }
    }
}

// ---------------------------------------------------------------- encode

/// Public id for a SyncML document of `ver_dtd` ("1.2", "1.1", "1.0").
pub fn syncml_public_id(ver_dtd: &str) -> u32 {
    match ver_dtd.trim() {
        "1.1" => PUBLIC_ID_SYNCML_11,
        "1.0" => PUBLIC_ID_SYNCML_10,
        _ => PUBLIC_ID_SYNCML_12,
    }
}

/// Public id for a DevInf document of `ver_dtd`.
pub fn devinf_public_id(ver_dtd: &str) -> u32 {
    match ver_dtd.trim() {
        "1.1" => PUBLIC_ID_DEVINF_11,
        "1.0" => PUBLIC_ID_DEVINF_10,
        _ => PUBLIC_ID_DEVINF_12,
    }
}

/// Encode a message as a complete WBXML document.
pub fn encode(msg: &Message) -> Vec<u8> {
    write_document(syncml_public_id(&msg.hdr.ver_dtd), &syncml_map::message_to_element(msg))
}

/// Decode a WBXML document into a message.
pub fn decode(input: &[u8]) -> Result<Message, DecodeError> {
    let root = parse_tree(input)?;
    syncml_map::message_from_element(&root)
}

/// Bytes `cmd` occupies inside an encoded SyncBody. See [`element_len`]: an
/// upper bound, exact when the command ends on code page 0 (every command the
/// client session sends except a Status carrying an Anchor).
pub fn encoded_command_len(cmd: &Command) -> usize {
    element_len(&syncml_map::command_to_element(cmd))
}

/// Bytes `item` adds to an encoded Add/Replace/Delete after another `Item`
/// (see [`element_len`]).
pub fn encoded_item_len(item: &Item) -> usize {
    element_len(&syncml_map::item_to_element(item))
}

/// Size of `el` inside a SyncML document, written from code page 0 (a
/// SyncBody child, or an element after one that left page 0 with its page
/// switch accounted), plus the 2-byte switch back to page 0 when it ends on
/// another page: whatever follows starts on page 0 again. Summing these over
/// consecutive siblings is therefore exact, except for the switch after the
/// last one (counted, perhaps not written). Element names without a token
/// (LITERAL, string table) are not accounted: the model writes none.
fn element_len(el: &Element) -> usize {
    // Counted, not written.
    let mut w = Writer { out: Count(0), lang: Language::SyncMl, page: 0, strtbl: &[] };
    w.element(el, false);
    w.out.0 + if w.page != 0 { 2 } else { 0 }
}

fn ver_dtd_of<'e>(root: &'e Element) -> &'e str {
    root.child("SyncHdr").and_then(|h| h.child_text("VerDTD")).or_else(|| root.child_text("VerDTD")).unwrap_or_default()
}

/// Write `root` as a WBXML document with `public_id`. The language follows the
/// root element (`DevInf` → DevInf tables, anything else → SyncML tables).
pub fn write_document(public_id: u32, root: &Element) -> Vec<u8> {
    let lang = if root.name == "DevInf" { Language::DevInf } else { Language::SyncMl };
    // Names without a token go to the string table (LITERAL tags).
    let mut literals = Vec::new();
    let size_hint = collect_literals(lang, root, &mut literals, false);
    let strtbl_len: usize = literals.iter().map(|(n, _)| n.len() + 1).sum();
    let mut out = Vec::with_capacity(16 + strtbl_len + size_hint);
    out.push(WBXML_VERSION);
    put_mb(&mut out, public_id);
    put_mb(&mut out, CHARSET_UTF8);
    put_mb(&mut out, strtbl_len as u32);
    for (name, _) in &literals {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    let mut w = Writer { out, lang, page: 0, strtbl: &literals };
    w.element(root, false);
    w.out
}

/// Write an element tree as WBXML with the public id derived from its content
/// (SyncHdr/VerDTD or the DevInf's VerDTD).
pub fn write_tree(root: &Element) -> Vec<u8> {
    let v = ver_dtd_of(root);
    let pid = if root.name == "DevInf" { devinf_public_id(v) } else { syncml_public_id(v) };
    write_document(pid, root)
}

/// Collect the names without a token (string table entries with their
/// offsets) and return a size estimate of the encoded tree (to pre-size the
/// output: content plus a few bytes per element).
fn collect_literals<'e>(lang: Language, el: &'e Element, tbl: &mut Vec<(&'e str, u32)>, in_data: bool) -> usize {
    let mut hint = 8 + el.text.len() + el.opaque.as_ref().map_or(0, |o| o.len());
    if in_data && el.name == "DevInf" {
        // nested document, own string table
        return hint
            + el.children.iter().map(|c| collect_literals(Language::DevInf, c, &mut Vec::new(), false)).sum::<usize>();
    }
    if token_of(lang, &el.name).is_none() && !tbl.iter().any(|(n, _)| *n == el.name) {
        let off = tbl.iter().map(|(n, _)| n.len() as u32 + 1).sum();
        tbl.push((el.name.as_ref(), off));
    }
    for c in &el.children {
        hint += collect_literals(lang, c, tbl, el.name == "Data");
    }
    hint
}

/// Where the writer puts its bytes: a buffer, or a counter (sizes).
trait Sink {
    fn put(&mut self, b: u8);
    fn put_slice(&mut self, s: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b);
    }
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// Counts the bytes instead of writing them.
struct Count(usize);

impl Sink for Count {
    fn put(&mut self, _: u8) {
        self.0 += 1;
    }
    fn put_slice(&mut self, s: &[u8]) {
        self.0 += s.len();
    }
}

struct Writer<'t, S: Sink> {
    out: S,
    lang: Language,
    page: u8,
    strtbl: &'t [(&'t str, u32)],
}

impl<S: Sink> Writer<'_, S> {
    fn element(&mut self, el: &Element, in_data: bool) {
        if in_data && el.name == "DevInf" && self.lang == Language::SyncMl {
            let v = el.child_text("VerDTD").unwrap_or_default();
            let nested = write_document(devinf_public_id(v), el);
            self.out.put(OPAQUE);
            put_mb(&mut self.out, nested.len() as u32);
            self.out.put_slice(&nested);
            return;
        }
        let content = !el.text.is_empty() || el.opaque.is_some() || !el.children.is_empty();
        let flag = if content { HAS_CONTENT } else { 0 };
        match token_of(self.lang, &el.name) {
            Some((page, token)) => {
                if page != self.page {
                    self.out.put(SWITCH_PAGE);
                    self.out.put(page);
                    self.page = page;
                }
                self.out.put(token | flag);
            }
            None => {
                let off = self.strtbl.iter().find(|(n, _)| *n == el.name).map(|(_, o)| *o).unwrap_or(0);
                self.out.put(LITERAL | flag);
                put_mb(&mut self.out, off);
            }
        }
        if !content {
            return;
        }
        if !el.text.is_empty() {
            // A NUL cannot appear in STR_I: write it as ENTITY 0.
            for (i, part) in el.text.split('\0').enumerate() {
                if i > 0 {
                    self.out.put(ENTITY);
                    self.out.put(0);
                }
                if !part.is_empty() {
                    self.out.put(STR_I);
                    self.out.put_slice(part.as_bytes());
                    self.out.put(0);
                }
            }
        }
        if let Some(o) = &el.opaque {
            self.out.put(OPAQUE);
            put_mb(&mut self.out, o.len() as u32);
            self.out.put_slice(o);
        }
        let data = el.name == "Data";
        for c in &el.children {
            self.element(c, data);
        }
        self.out.put(END);
    }
}

/// Multi-byte unsigned integer (7 bits per byte, most significant first).
fn put_mb(out: &mut impl Sink, mut v: u32) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    let n = buf.len();
    for (k, b) in buf[i..].iter().enumerate() {
        out.put(if i + k + 1 < n { b | 0x80 } else { *b });
    }
}

// ---------------------------------------------------------------- decode

/// Parse a WBXML document into its header and element tree.
pub fn parse_document(input: &[u8]) -> Result<(Header, Element<'_>), DecodeError> {
    parse_at(input, 0, 0)
}

/// Parse a WBXML document into an element tree (root element returned).
pub fn parse_tree(input: &[u8]) -> Result<Element<'_>, DecodeError> {
    parse_document(input).map(|(_, root)| root)
}

/// Whether `input` starts like a WBXML document (version 1.0-1.3 and a
/// plausible public id), used to tell WBXML from XML without a Content-Type.
pub fn looks_like_wbxml(input: &[u8]) -> bool {
    input.len() >= 4 && input[0] <= 0x03 && input[0] != b'<'
}

fn err(position: u64, message: impl Into<String>) -> DecodeError {
    DecodeError::Wbxml { position, message: message.into() }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data` in the outermost input (for error positions).
    base: u64,
}

impl<'a> Reader<'a> {
    fn at(&self) -> u64 {
        self.base + self.pos as u64
    }
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn need_byte(&mut self, what: &str) -> Result<u8, DecodeError> {
        self.byte().ok_or_else(|| err(self.at(), format!("input ends inside {what}")))
    }
    fn mb(&mut self) -> Result<u32, DecodeError> {
        let start = self.at();
        let mut v: u32 = 0;
        for _ in 0..5 {
            let b = self.need_byte("a multi-byte integer")?;
            v = (v << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err(start, "multi-byte integer longer than 32 bits"))
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.data.len() - self.pos < n {
            return Err(err(self.at(), format!("{what} of {n} bytes runs past the end of the input")));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn cstr(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == 0) else {
            return Err(err(self.at(), format!("unterminated {what}")));
        };
        self.pos += n + 1;
        Ok(&rest[..n])
    }
}

fn table_str(tbl: &[u8], idx: u32, pos: u64) -> Result<&[u8], DecodeError> {
    let i = idx as usize;
    if i >= tbl.len() {
        return Err(err(pos, format!("string table reference {idx} beyond the table ({} bytes)", tbl.len())));
    }
    let rest = &tbl[i..];
    Ok(&rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())])
}

/// Append a string of the input to `el`'s content, borrowing it when it is
/// the element's only content.
fn add_input_text<'a>(el: &mut Element<'a>, bytes: &'a [u8]) {
    if el.opaque.is_none() && el.text.is_empty() {
        if let Ok(s) = std::str::from_utf8(bytes) {
            el.text = Cow::Borrowed(s);
            return;
        }
    }
    add_text(el, bytes);
}

fn add_text(el: &mut Element, bytes: &[u8]) {
    if el.opaque.is_none() {
        if let Ok(s) = std::str::from_utf8(bytes) {
            el.text.to_mut().push_str(s);
            return;
        }
    }
    if el.name == "Data" {
        // Binary-safe item data: keep the exact bytes.
        let o = el.opaque.get_or_insert_with(Cow::default).to_mut();
        if !el.text.is_empty() {
            let mut t = std::mem::take(&mut el.text).into_owned().into_bytes();
            t.extend_from_slice(o);
            *o = t;
        }
        o.extend_from_slice(bytes);
    } else {
        el.text.to_mut().push_str(&String::from_utf8_lossy(bytes));
    }
}

fn parse_at(input: &[u8], base: u64, depth: usize) -> Result<(Header, Element<'_>), DecodeError> {
    if input.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut r = Reader { data: input, pos: 0, base };
    let version = r.need_byte("the header")?;
    if version > 0x03 {
        return Err(err(base, format!("not WBXML: version byte 0x{version:02x}")));
    }
    let pid = r.mb()?;
    let pid_index = if pid == 0 { Some(r.mb()?) } else { None };
    let charset = r.mb()?;
    if charset != CHARSET_UTF8 && charset != 0 && charset != 3 {
        // 3 = US-ASCII (a subset); 0 = unknown, assumed UTF-8.
        return Err(err(r.at(), format!("unsupported charset MIBenum {charset} (only UTF-8)")));
    }
    let tbl_len = r.mb()? as usize;
    let tbl = r.bytes(tbl_len, "string table")?;
    let public_id = match pid_index {
        None => PublicId::Known(pid),
        Some(i) => PublicId::Literal(String::from_utf8_lossy(table_str(tbl, i, r.at())?).into_owned()),
    };
    let header = Header { version, public_id, charset, string_table: tbl.to_vec() };
    let lang = header.language();
    let v11 = header.devinf_11();

    let mut page: u8 = 0;
    let mut tree = TreeBuilder::default();
    loop {
        let pos = r.at();
        let Some(tok) = r.byte() else {
            if let Some(open) = tree.top() {
                return Err(DecodeError::Truncated { position: pos, open_element: open.name.to_string() });
            }
            return match tree.finish() {
                Some(root) => Ok((header, root)),
                None => Err(DecodeError::Empty),
            };
        };
        match tok {
            SWITCH_PAGE => page = r.need_byte("SWITCH_PAGE")?,
            END => {
                if !tree.close() {
                    return Err(err(pos, "END without an open element"));
                }
            }
            ENTITY => {
                let c = r.mb()?;
                let Some(top) = tree.top() else { return Err(err(pos, "ENTITY outside the root element")) };
                let ch = char::from_u32(c).unwrap_or('\u{fffd}');
                let mut b = [0u8; 4];
                add_text(top, ch.encode_utf8(&mut b).as_bytes());
            }
            STR_I => {
                let s = r.cstr("inline string")?;
                let Some(top) = tree.top() else { return Err(err(pos, "string outside the root element")) };
                add_input_text(top, s);
            }
            STR_T => {
                let i = r.mb()?;
                let s = table_str(tbl, i, pos)?;
                let Some(top) = tree.top() else { return Err(err(pos, "string outside the root element")) };
                add_input_text(top, s);
            }
            OPAQUE => {
                let n = r.mb()? as usize;
                let start = r.at();
                let bytes = r.bytes(n, "OPAQUE data")?;
                let level = depth + tree.depth();
                let Some(top) = tree.top() else { return Err(err(pos, "OPAQUE outside the root element")) };
                let nested = (top.name == "Data" && lang == Language::SyncMl && looks_like_wbxml(bytes))
                    .then(|| parse_at(bytes, start, level).ok())
                    .flatten()
                    .filter(|(h, e)| h.language() == Language::DevInf || e.name == "DevInf");
                match nested {
                    Some((_, el)) => tree.add(el),
                    None => match &mut top.opaque {
                        None if top.text.is_empty() => top.opaque = Some(Cow::Borrowed(bytes)),
                        None => {
                            let mut o = std::mem::take(&mut top.text).into_owned().into_bytes();
                            o.extend_from_slice(bytes);
                            top.opaque = Some(Cow::Owned(o));
                        }
                        Some(o) => o.to_mut().extend_from_slice(bytes),
                    },
                }
            }
            PI => skip_until_end(&mut r, tbl)?,
            EXT_I_0..=EXT_I_2 => {
                r.cstr("extension string")?;
            }
            EXT_T_0..=EXT_T_2 => {
                r.mb()?;
            }
            EXT_0..=EXT_2 => {}
            _ => {
                // A tag.
                if tree.has_root() {
                    return Err(DecodeError::TrailingContent { position: pos });
                }
                let id = tok & 0x3f;
                let name: Cow<'static, str> = if id == LITERAL {
                    let i = r.mb()?;
                    String::from_utf8_lossy(table_str(tbl, i, pos)?).into_owned().into()
                } else {
                    match token_name(lang, page, id, v11) {
                        Some(n) => n.into(),
                        None => format!("unknown-{page}-0x{id:02x}").into(),
                    }
                };
                if tok & HAS_ATTRS != 0 {
                    skip_until_end(&mut r, tbl)?;
                }
                if depth + tree.depth() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep { position: pos, element: name.into_owned(), max: MAX_DEPTH });
                }
                let el = Element { name, pos, ..Element::default() };
                if tok & HAS_CONTENT != 0 {
                    tree.open(el);
                } else {
                    tree.add(el);
                }
            }
        }
    }
}

/// Skip attribute lists and processing instructions (up to their END).
fn skip_until_end(r: &mut Reader<'_>, tbl: &[u8]) -> Result<(), DecodeError> {
    loop {
        let pos = r.at();
        match r.need_byte("an attribute list")? {
            END => return Ok(()),
            SWITCH_PAGE => {
                r.need_byte("SWITCH_PAGE")?;
            }
            STR_I => {
                r.cstr("inline string")?;
            }
            STR_T | EXT_T_0..=EXT_T_2 | ENTITY => {
                let i = r.mb()?;
                let _ = (i, tbl);
            }
            LITERAL | LITERAL_A | LITERAL_C | LITERAL_AC => {
                r.mb()?;
            }
            EXT_I_0..=EXT_I_2 => {
                r.cstr("extension string")?;
            }
            OPAQUE => {
                let n = r.mb()? as usize;
                r.bytes(n, "OPAQUE data")?;
            }
            b if b == PI => return Err(err(pos, "PI inside an attribute list")),
            _ => {} // attribute start / value tokens
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mb_u_int32() {
        for (v, enc) in [(0u32, vec![0u8]), (0x7f, vec![0x7f]), (0x80, vec![0x81, 0x00]), (0x1201, vec![0xa4, 0x01]), (6875, vec![0xb5, 0x5b])] {
            let mut out = Vec::new();
            put_mb(&mut out, v);
            assert_eq!(out, enc, "{v:#x}");
            let mut r = Reader { data: &out, pos: 0, base: 0 };
            assert_eq!(r.mb().unwrap(), v);
        }
        let mut out = Vec::new();
        put_mb(&mut out, u32::MAX);
        let mut r = Reader { data: &out, pos: 0, base: 0 };
        assert_eq!(r.mb().unwrap(), u32::MAX);
    }

    #[test]
    fn tokens_are_unique_per_language() {
        for (lang, pages) in [(Language::SyncMl, vec![(0u8, SYNCML_PAGE), (1, METINF_PAGE)]), (Language::DevInf, vec![(0, DEVINF_PAGE)])] {
            for (page, table) in pages {
                for (i, name) in table.iter().enumerate() {
                    if name.is_empty() {
                        continue;
                    }
                    assert_eq!(token_of(lang, name), Some((page, i as u8 + 5)), "{name}");
                    assert_eq!(token_name(lang, page, i as u8 + 5, false), Some(*name));
                }
            }
        }
    }

    #[test]
    fn string_table_literal_and_entities() {
        // <SyncML><X>ab\0c</X><Data>OPAQUE ff</Data></SyncML>, X via LITERAL.
        let mut root = Element::new("SyncML");
        let mut x = Element::leaf("X-Unknown", "a\0b");
        x.push_leaf("LocURI", "u");
        root.push(x);
        root.push_opaque("Data", vec![0xff, 0x00, 0x01]);
        let bytes = write_document(PUBLIC_ID_SYNCML_12, &root);
        let (h, back) = parse_document(&bytes).unwrap();
        assert_eq!(h.string_table, b"X-Unknown\0");
        assert_eq!(back.children[0].name, "X-Unknown");
        assert_eq!(back.children[0].text, "a\0b");
        assert_eq!(back.children[1].opaque.as_deref(), Some(&[0xff, 0x00, 0x01][..]));
        assert_eq!(write_document(PUBLIC_ID_SYNCML_12, &strip_pos(back)), bytes);
    }

    #[test]
    fn str_t_references_are_resolved() {
        // version 2, pid 0x1201, utf-8, strtbl "abc\0de\0", <SyncML><MsgID>STR_T 4</MsgID></SyncML>
        let doc = [0x02, 0xa4, 0x01, 0x6a, 0x07, b'a', b'b', b'c', 0, b'd', b'e', 0, 0x6d, 0x5b, 0x83, 0x04, 0x03, b'!', 0, 0x01, 0x01];
        let root = parse_tree(&doc).unwrap();
        assert_eq!(root.child_text("MsgID"), Some("de!"));
        // literal public id
        let doc = [0x02, 0x00, 0x00, 0x6a, 0x1e];
        let mut d = doc.to_vec();
        d.extend_from_slice(b"-//SYNCML//DTD DevInf 1.2//EN\0");
        d.extend_from_slice(&[0x4a, 0x65, 0x03, b'1', b'.', b'2', 0, 0x01, 0x01]);
        let (h, root) = parse_document(&d).unwrap();
        assert_eq!(h.language(), Language::DevInf);
        assert_eq!(root.name, "DevInf");
        assert_eq!(root.child_text("VerDTD"), Some("1.2"));
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x02],
            vec![0x02, 0xa4],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x05, b'a'],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x00, 0x6d],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x00, 0x6d, 0x83, 0x05, 0x01],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x00, 0x6d, 0xc3, 0x8f, 0xff, 0xff, 0x7f, 0x01],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x00, 0x6d, 0x03, b'x'],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x00, 0x01],
            vec![0x02, 0xa4, 0x01, 0x6a, 0x00, 0x2d, 0x2d],
            vec![0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            vec![0x02, 0xa4, 0x01, 0x04, 0x00, 0x6d, 0x01],
        ];
        for c in cases {
            assert!(parse_tree(&c).is_err(), "{c:02x?}");
        }
        let deep: Vec<u8> = [vec![0x02, 0xa4, 0x01, 0x6a, 0x00], vec![0x6d; MAX_DEPTH + 1]].concat();
        assert!(matches!(parse_tree(&deep), Err(DecodeError::TooDeep { .. })));
    }

    fn strip_pos(mut e: Element) -> Element {
        e.pos = 0;
        e.children = e.children.into_iter().map(strip_pos).collect();
        e
    }
}
