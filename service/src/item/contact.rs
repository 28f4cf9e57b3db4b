//! The typed contact of the common item model, and its mapping from and to vCard
//! properties.
//!
//! A property becomes a typed field only if the field can represent it completely: no
//! group prefix, only the parameters the field models (e.g. `TYPE` on `TEL`), the first
//! occurrence of a single-valued property. Everything else is kept verbatim in
//! [`Contact::extra`], in its original order, so no user data is lost on the way
//! through the model. EDS-internal data is dropped: every `X-EVOLUTION-*` parameter
//! (`X-EVOLUTION-E164`, `X-EVOLUTION-UI-SLOT`, …) and the computed properties listed in
//! [`INTERNAL_PROPERTIES`]; `X-EVOLUTION-ANNIVERSARY` becomes [`Contact::anniversary`].

use base64::Engine as _;

use super::vcard::{self, split_escaped, unescape_text, OutProp, OutValue, Param, Property};
use super::WireFormat;

/// Properties that only make sense inside evolution-data-server and are never put on
/// the wire.
pub const INTERNAL_PROPERTIES: &[&str] = &["X-EVOLUTION-FILE-AS", "X-EVOLUTION-BOOK-URI"];

/// `N`: the structured name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Name {
    pub family: String,
    pub given: String,
    pub additional: String,
    pub prefixes: String,
    pub suffixes: String,
}

impl Name {
    fn is_empty(&self) -> bool {
        [
            &self.family,
            &self.given,
            &self.additional,
            &self.prefixes,
            &self.suffixes,
        ]
        .iter()
        .all(|s| s.is_empty())
    }
}

/// `TEL`. `types` are upper-case vCard types (`CELL`, `HOME`, `VOICE`, …) without `PREF`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tel {
    pub value: String,
    pub types: Vec<String>,
    pub pref: bool,
}

/// `EMAIL`. `types` as for [`Tel`] (`HOME`, `WORK`, `INTERNET`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Email {
    pub value: String,
    pub types: Vec<String>,
    pub pref: bool,
}

/// `ADR`: the seven components and the types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Address {
    pub po_box: String,
    pub extended: String,
    pub street: String,
    pub locality: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
    pub types: Vec<String>,
    pub pref: bool,
}

/// `IMPP` (RFC 4770): an instant-messaging URI such as `xmpp:alice@example.org`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Impp {
    pub uri: String,
    pub types: Vec<String>,
    pub pref: bool,
}

/// A photo, always as embedded bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Photo {
    pub data: Vec<u8>,
    /// MIME type, e.g. `image/png`.
    pub mime: String,
}

/// A contact. Text fields hold unescaped text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Contact {
    pub uid: Option<String>,
    /// `REV` as written by the store (a timestamp).
    pub rev: Option<String>,
    pub name: Option<Name>,
    /// `FN`.
    pub formatted_name: Option<String>,
    pub nickname: Vec<String>,
    pub tels: Vec<Tel>,
    pub emails: Vec<Email>,
    pub addresses: Vec<Address>,
    /// `ORG` components: organisation name, then units. Empty: no `ORG`.
    pub org: Vec<String>,
    pub title: Option<String>,
    pub role: Option<String>,
    pub note: Option<String>,
    /// `BDAY` as written (`1980-05-01`, `19800501`, `--0501`, a date-time …).
    pub birthday: Option<String>,
    /// `ANNIVERSARY` / `X-ANNIVERSARY` / `X-EVOLUTION-ANNIVERSARY`, as written.
    pub anniversary: Option<String>,
    pub urls: Vec<String>,
    pub categories: Vec<String>,
    pub photo: Option<Photo>,
    pub impp: Vec<Impp>,
    /// Every other property, in input order (see the module documentation).
    pub extra: Vec<Property>,
}

/// The MIME type of image data, from its magic bytes.
pub fn sniff_image_mime(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else if data.starts_with(b"BM") && data.len() > 14 {
        Some("image/bmp")
    } else if data.starts_with(b"II*\0") || data.starts_with(b"MM\0*") {
        Some("image/tiff")
    } else {
        None
    }
}

/// The MIME type for a vCard 2.1/3.0 `TYPE` token of a PHOTO or LOGO (`PNG`, `JPEG`,
/// `image/png` …).
pub fn mime_from_type_token(token: &str) -> Option<String> {
    let t = token.trim();
    if t.contains('/') {
        return Some(t.to_ascii_lowercase());
    }
    let mime = match t.to_ascii_uppercase().as_str() {
        "PNG" => "image/png",
        "JPEG" | "JPG" | "PJPEG" => "image/jpeg",
        "GIF" => "image/gif",
        "BMP" => "image/bmp",
        "WEBP" => "image/webp",
        "TIFF" | "TIF" => "image/tiff",
        "" => return None,
        other => return Some(format!("image/{}", other.to_ascii_lowercase())),
    };
    Some(mime.to_string())
}

/// The vCard `TYPE` token for a MIME type (`image/png` → `PNG`).
pub fn type_token_from_mime(mime: &str) -> Option<String> {
    let (_, sub) = mime.split_once('/')?;
    let sub = sub.split(';').next().unwrap_or("").trim();
    if sub.is_empty() {
        return None;
    }
    Some(match sub.to_ascii_lowercase().as_str() {
        "jpeg" | "jpg" | "pjpeg" => "JPEG".to_string(),
        s => s.trim_start_matches("x-").to_ascii_uppercase(),
    })
}

/// Decodes an inline image property (`ENCODING=b` or a `data:` URI) into a [`Photo`].
/// `None` if the property is not inline or its data cannot be decoded.
pub fn decode_inline_image(p: &Property) -> Option<Photo> {
    let type_mime = p.param_values("TYPE").find_map(mime_from_type_token);
    let (data, declared) = if p.is_binary() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(p.value.as_bytes())
            .ok()?;
        (data, type_mime)
    } else {
        // data:[<mime>][;base64],<data>
        let v = unescape_text(&p.value);
        let rest = v
            .strip_prefix("data:")
            .or_else(|| v.strip_prefix("DATA:"))?;
        let (meta, payload) = rest.split_once(',')?;
        let mut meta_parts = meta.split(';');
        let mime = meta_parts
            .next()
            .filter(|m| !m.is_empty())
            .map(|m| m.to_ascii_lowercase());
        if !meta_parts.any(|m| m.eq_ignore_ascii_case("base64")) {
            return None;
        }
        let clean: String = payload
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .ok()?;
        (data, mime.or(type_mime))
    };
    let mime = sniff_image_mime(&data)
        .map(str::to_string)
        .or(declared)
        .unwrap_or_else(|| "application/octet-stream".to_string());
    Some(Photo { data, mime })
}

/// Splits `TYPE` values into (types without PREF, pref).
fn types_and_pref(p: &Property) -> (Vec<String>, bool) {
    let mut pref = p.params.iter().any(|q| q.name == "PREF");
    let mut types = Vec::new();
    for v in p.param_values("TYPE") {
        let v = v.to_ascii_uppercase();
        if v == "PREF" {
            pref = true;
        } else if !v.is_empty() && !types.contains(&v) {
            types.push(v);
        }
    }
    (types, pref)
}

/// True if the property has no group and only parameters named in `allowed`.
fn plain(p: &Property, allowed: &[&str]) -> bool {
    p.group.is_none() && p.params.iter().all(|q| allowed.contains(&q.name.as_str()))
}

fn components(p: &Property, n: usize) -> Option<Vec<String>> {
    let parts = split_escaped(&p.value, ';');
    if parts.len() > n {
        return None;
    }
    let mut out: Vec<String> = parts.into_iter().map(unescape_text).collect();
    out.resize(n, String::new());
    Some(out)
}

fn list_items(p: &Property) -> Vec<String> {
    split_escaped(&p.value, ',')
        .into_iter()
        .map(|s| unescape_text(s).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Sets a single-valued field if it is still empty; returns false if it was taken.
fn set_once(slot: &mut Option<String>, value: String) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

impl Contact {
    /// Builds a contact from parsed properties (`BEGIN`/`END`/`VERSION` excluded).
    pub fn from_properties(props: Vec<Property>) -> Contact {
        let mut c = Contact::default();
        for mut p in props {
            p.params.retain(|q| !q.name.starts_with("X-EVOLUTION-"));
            if INTERNAL_PROPERTIES.contains(&p.name.as_str()) {
                continue;
            }
            if !c.take(&p) {
                c.extra.push(p);
            }
        }
        c
    }

    /// Puts `p` into its typed field; false if it belongs in `extra`.
    fn take(&mut self, p: &Property) -> bool {
        const TYPED: &[&str] = &["TYPE", "PREF"];
        const DATE: &[&str] = &["VALUE"];
        match p.name.as_str() {
            "UID" if plain(p, &[]) => set_once(&mut self.uid, p.text_value()),
            "REV" if plain(p, DATE) => set_once(&mut self.rev, p.value.clone()),
            "FN" if plain(p, &[]) => {
                let v = p.text_value();
                v.is_empty() || set_once(&mut self.formatted_name, v)
            }
            "N" if plain(p, &[]) && self.name.is_none() => match components(p, 5) {
                Some(parts) => {
                    let mut it = parts.into_iter();
                    let mut next = || it.next().unwrap_or_default();
                    let name = Name {
                        family: next(),
                        given: next(),
                        additional: next(),
                        prefixes: next(),
                        suffixes: next(),
                    };
                    if !name.is_empty() {
                        self.name = Some(name);
                    }
                    true
                }
                None => false,
            },
            "NICKNAME" if plain(p, &[]) => {
                self.nickname.extend(list_items(p));
                true
            }
            "CATEGORIES" if plain(p, &[]) => {
                self.categories.extend(list_items(p));
                true
            }
            "TEL" if plain(p, TYPED) => {
                let (types, pref) = types_and_pref(p);
                self.tels.push(Tel {
                    value: p.text_value(),
                    types,
                    pref,
                });
                true
            }
            "EMAIL" if plain(p, TYPED) => {
                let (types, pref) = types_and_pref(p);
                self.emails.push(Email {
                    value: p.text_value(),
                    types,
                    pref,
                });
                true
            }
            "IMPP" if plain(p, TYPED) => {
                let (types, pref) = types_and_pref(p);
                self.impp.push(Impp {
                    uri: p.text_value(),
                    types,
                    pref,
                });
                true
            }
            "ADR" if plain(p, TYPED) => match components(p, 7) {
                Some(parts) => {
                    let (types, pref) = types_and_pref(p);
                    let mut it = parts.into_iter();
                    let mut next = || it.next().unwrap_or_default();
                    self.addresses.push(Address {
                        po_box: next(),
                        extended: next(),
                        street: next(),
                        locality: next(),
                        region: next(),
                        postal_code: next(),
                        country: next(),
                        types,
                        pref,
                    });
                    true
                }
                None => false,
            },
            "ORG" if plain(p, &[]) && self.org.is_empty() => {
                let mut parts: Vec<String> = split_escaped(&p.value, ';')
                    .into_iter()
                    .map(unescape_text)
                    .collect();
                while parts.last().is_some_and(|s| s.is_empty()) && parts.len() > 1 {
                    parts.pop();
                }
                if parts.iter().all(|s| s.is_empty()) {
                    return true;
                }
                self.org = parts;
                true
            }
            "TITLE" if plain(p, &[]) => set_once(&mut self.title, p.text_value()),
            "ROLE" if plain(p, &[]) => set_once(&mut self.role, p.text_value()),
            "NOTE" if plain(p, &[]) => set_once(&mut self.note, p.text_value()),
            "BDAY" if plain(p, DATE) => set_once(&mut self.birthday, p.value.trim().to_string()),
            "ANNIVERSARY" | "X-ANNIVERSARY" | "X-EVOLUTION-ANNIVERSARY" if plain(p, DATE) => {
                set_once(&mut self.anniversary, p.value.trim().to_string())
            }
            "URL" if plain(p, DATE) => {
                self.urls.push(p.text_value());
                true
            }
            "PHOTO" if self.photo.is_none() && plain(p, &["ENCODING", "TYPE", "VALUE"]) => {
                let inline = p.is_binary()
                    || p.value
                        .get(..5)
                        .is_some_and(|s| s.eq_ignore_ascii_case("data:"));
                match inline.then(|| decode_inline_image(p)).flatten() {
                    Some(photo) => {
                        self.photo = Some(photo);
                        true
                    }
                    // A URI (or undecodable data) is kept as written.
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// The `FN` to write when none is set: from the name, else the organisation, else
    /// the first e-mail address or phone number.
    fn derived_formatted_name(&self) -> String {
        if let Some(n) = &self.name {
            let parts = [&n.prefixes, &n.given, &n.additional, &n.family, &n.suffixes];
            let joined: Vec<&str> = parts
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect();
            if !joined.is_empty() {
                return joined.join(" ");
            }
        }
        self.org
            .first()
            .filter(|s| !s.is_empty())
            .or(self.emails.first().map(|e| &e.value))
            .or(self.tels.first().map(|t| &t.value))
            .cloned()
            .unwrap_or_default()
    }

    /// The properties to write, in the fixed order that makes output deterministic.
    pub(crate) fn to_out(&self, format: WireFormat) -> Vec<OutProp> {
        self.clone().into_out(format)
    }

    /// [`Contact::to_out`], moving the values instead of copying them (a backup writes each
    /// contact it read once).
    pub(crate) fn into_out(self, format: WireFormat) -> Vec<OutProp> {
        use OutValue::*;
        let mut out = Vec::with_capacity(
            8 + self.tels.len() + self.emails.len() + self.addresses.len() + self.impp.len() + self.urls.len()
                + self.extra.len(),
        );
        let formatted_name = match (self.formatted_name.is_none(), format) {
            // FN is mandatory in 3.0 only.
            (true, WireFormat::VCard30) => Some(self.derived_formatted_name()),
            _ => None,
        };
        let n = self.name.unwrap_or_default();
        out.push(OutProp::new("N", Structured(vec![n.family, n.given, n.additional, n.prefixes, n.suffixes])));
        if let Some(f) = self.formatted_name.or(formatted_name) {
            out.push(OutProp::new("FN", Text(f)));
        }
        if !self.nickname.is_empty() {
            out.push(OutProp::new("NICKNAME", List(self.nickname)));
        }
        if !self.org.is_empty() {
            out.push(OutProp::new("ORG", Structured(self.org)));
        }
        if let Some(t) = self.title {
            out.push(OutProp::new("TITLE", Text(t)));
        }
        if let Some(r) = self.role {
            out.push(OutProp::new("ROLE", Text(r)));
        }
        for t in self.tels {
            out.push(OutProp::new("TEL", Text(t.value)).with_types(t.types, t.pref));
        }
        for e in self.emails {
            out.push(OutProp::new("EMAIL", Text(e.value)).with_types(e.types, e.pref));
        }
        for a in self.addresses {
            let parts = vec![a.po_box, a.extended, a.street, a.locality, a.region, a.postal_code, a.country];
            out.push(OutProp::new("ADR", Structured(parts)).with_types(a.types, a.pref));
        }
        for i in self.impp {
            out.push(OutProp::new("IMPP", Verbatim(i.uri)).with_types(i.types, i.pref));
        }
        for u in self.urls {
            out.push(OutProp::new("URL", Verbatim(u)));
        }
        if let Some(b) = self.birthday {
            out.push(OutProp::new("BDAY", Verbatim(b)));
        }
        if let Some(a) = self.anniversary {
            out.push(OutProp::new("X-ANNIVERSARY", Verbatim(a)));
        }
        if let Some(n) = self.note {
            out.push(OutProp::new("NOTE", Text(n)));
        }
        if !self.categories.is_empty() {
            out.push(OutProp::new("CATEGORIES", List(self.categories)));
        }
        out.extend(self.extra.into_iter().filter(|p| !INTERNAL_PROPERTIES.contains(&p.name.as_str())).map(|p| {
            let mut o = OutProp::from_property(p);
            o.params.retain(|q| !q.name.starts_with("X-EVOLUTION-"));
            o
        }));
        if let Some(photo) = self.photo {
            let token = type_token_from_mime(&photo.mime);
            let mut p = OutProp::new("PHOTO", Binary(photo.data));
            if let Some(token) = token {
                p.params.push(Param::new("TYPE", &[&token]));
            }
            out.push(p);
        }
        if let Some(u) = self.uid {
            out.push(OutProp::new("UID", Text(u)));
        }
        if let Some(r) = self.rev {
            out.push(OutProp::new("REV", Verbatim(r)));
        }
        out
    }

    /// The vCard 3.0 evolution-data-server stores: as [`Contact::to_vcard`], with the
    /// anniversary as EDS's own `X-EVOLUTION-ANNIVERSARY`.
    pub fn to_eds_vcard(&self) -> String {
        let mut props = self.to_out(WireFormat::VCard30);
        for p in props.iter_mut().filter(|p| p.name == "X-ANNIVERSARY") {
            p.name = "X-EVOLUTION-ANNIVERSARY".into();
        }
        String::from_utf8_lossy(&vcard::write(&props, WireFormat::VCard30)).into_owned()
    }

    /// Serialises the contact as a vCard in `format`.
    pub fn to_vcard(&self, format: WireFormat) -> Vec<u8> {
        vcard::write(&self.to_out(format), format)
    }

    /// [`Contact::to_vcard`] of a contact that is not needed afterwards (no copies).
    pub fn into_vcard(self, format: WireFormat) -> Vec<u8> {
        vcard::write(&self.into_out(format), format)
    }
}
