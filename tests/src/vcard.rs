//! Test-side vCard handling, independent of the service's code:
//!
//! * [`parse`] unfolds and splits vCards into properties (name, params, raw value);
//! * [`compare`] compares a contact as seeded with the contact as the SyncML
//!   server stored it, field by field, allowing exactly the rewrites listed
//!   in [`ALLOWED_REWRITES`];
//! * [`ContactSpec`] / [`generate`] make realistic test contacts (names in
//!   several scripts, typed TEL/EMAIL, ADR, NOTE with escapes, ORG,
//!   CATEGORIES, BDAY, inline PNG photos).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;

/// What the server (SyncEvolution 2.0 / Synthesis engine, file backend) and
/// the path EDS → imsyncd → SyncML may rewrite. Everything else of the
/// compared properties must be equal.
pub const ALLOWED_REWRITES: &[&str] = &[
    "PRODID, REV, UID, VERSION and X-* properties are added, replaced or dropped (not compared)",
    "line folding (unfolded before comparing) and CRLF vs LF",
    "property order, and the order of properties with the same name (compared as multisets)",
    "empty properties are added (`NICKNAME:`, `ORG:;;;`, `ADR:;;;;;;`, `PHOTO:`, ...): values whose components are all empty are ignored",
    "trailing empty components of structured values are added or dropped (`ORG:A;B` vs `ORG:A;B;;`)",
    "text escaping variants: values are compared after unescaping (`\\n`/`\\N`, `\\,`, `\\;`, `\\\\`)",
    "parameter order, parameter name case, TYPE value case and splitting (`TYPE=a,b` vs `TYPE=a;TYPE=b`): TYPE is compared as an upper-case set",
    "EMAIL TYPE=INTERNET and TEL TYPE=VOICE (the defaults) may be added or dropped; whitespace around TEL/EMAIL values",
    "X-* parameters (e.g. EDS's X-EVOLUTION-E164) and CHARSET/ENCODING/VALUE parameters (not compared)",
    "BDAY date format: `1970-03-21` vs `19700321` (compared without dashes)",
    "PHOTO: encoding parameter (`ENCODING=b`/`B`/`BASE64`), base64 line breaks; compared as decoded bytes plus the image type (`PNG`, `image/png`)",
    "CATEGORIES order (compared as a set)",
];

/// Properties [`compare`] looks at.
pub const COMPARED: &[&str] = &["N", "FN", "TEL", "EMAIL", "ADR", "NOTE", "ORG", "CATEGORIES", "BDAY", "PHOTO"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub group: Option<String>,
    /// Upper-case name.
    pub name: String,
    /// (upper-case name, values). A bare vCard 2.1 parameter (`TEL;CELL:`)
    /// is stored as `("TYPE", ["CELL"])`.
    pub params: Vec<(String, Vec<String>)>,
    /// Raw (still escaped) value, unfolded.
    pub value: String,
}

impl Property {
    pub fn param(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect()
    }

    /// TYPE values, upper case, as a set.
    pub fn types(&self) -> BTreeSet<String> {
        self.param("TYPE").iter().flat_map(|v| v.split(',')).map(|v| v.trim().to_ascii_uppercase()).filter(|v| !v.is_empty()).collect()
    }

    /// Structured value: split on unescaped `;`, each component unescaped.
    pub fn components(&self) -> Vec<String> {
        split_unescaped(&self.value, ';').iter().map(|c| unescape(c)).collect()
    }

    /// Text value, unescaped.
    pub fn text(&self) -> String {
        unescape(&self.value)
    }

    /// List value (CATEGORIES): split on unescaped `,`, unescaped.
    pub fn list(&self) -> Vec<String> {
        split_unescaped(&self.value, ',').iter().map(|c| unescape(c)).collect()
    }

    /// Decoded inline binary value (PHOTO;ENCODING=b), if it is one.
    pub fn binary(&self) -> Option<Vec<u8>> {
        let enc = self.param("ENCODING").first().map(|e| e.to_ascii_uppercase());
        let inline = matches!(enc.as_deref(), Some("B") | Some("BASE64"));
        let data_uri = self.value.starts_with("data:");
        if !inline && !data_uri {
            return None;
        }
        let b64: String = if data_uri { self.value.split_once(',')?.1.to_string() } else { self.value.clone() };
        let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD.decode(clean).ok()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub props: Vec<Property>,
}

impl Contact {
    pub fn all(&self, name: &str) -> impl Iterator<Item = &Property> {
        let name = name.to_ascii_uppercase();
        self.props.iter().filter(move |p| p.name == name)
    }

    pub fn first(&self, name: &str) -> Option<&Property> {
        self.all(name).next()
    }

    /// Unescaped text of the first property `name`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.first(name).map(|p| p.text())
    }

    pub fn uid(&self) -> Option<String> {
        self.text("UID")
    }

    /// The test key: the EMAIL made by [`ContactSpec`] (`…+c<run>-<n>@…`).
    pub fn key(&self) -> Option<String> {
        self.all("EMAIL").map(|p| p.text()).find(|e| is_key(e))
    }
}

fn is_key(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, _)| local.contains("+c"))
}

/// Undo line folding (CRLF or LF followed by a space or tab).
pub fn unfold(text: &str) -> String {
    let t = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' && matches!(chars.peek(), Some(' ') | Some('\t')) {
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Split on `sep` where not escaped by a backslash.
pub fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.last_mut().unwrap().push('\\');
            out.last_mut().unwrap().push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    if esc {
        out.last_mut().unwrap().push('\\');
    }
    out
}

/// vCard 3.0 text unescaping.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// vCard 3.0 text escaping (RFC 2426 5): backslash, `;`, `,`, newline.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace('\n', "\\n")
}

/// One unfolded content line as a property (also used for iCalendar).
pub fn parse_line(line: &str) -> Option<Property> {
    // name and params end at the first ':' outside double quotes
    let mut in_q = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_q = !in_q,
            ':' if !in_q => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = vec![];
    let mut cur = String::new();
    in_q = false;
    for c in head.chars() {
        match c {
            '"' => {
                in_q = !in_q;
                cur.push(c)
            }
            ';' if !in_q => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut it = parts.into_iter();
    let full = it.next()?;
    let (group, name) = match full.rsplit_once('.') {
        Some((g, n)) => (Some(g.to_string()), n.to_string()),
        None => (None, full),
    };
    let params = it
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_uppercase(),
                split_unescaped(v, ',').into_iter().map(|x| x.trim_matches('"').to_string()).collect(),
            ),
            None => ("TYPE".to_string(), vec![p.trim().to_string()]),
        })
        .collect();
    Some(Property { group, name: name.trim().to_ascii_uppercase(), params, value: value.to_string() })
}

/// Parse every vCard in `text` (BEGIN:VCARD ... END:VCARD).
pub fn parse_all(text: &str) -> Vec<Contact> {
    let mut out = vec![];
    let mut cur: Option<Contact> = None;
    for line in unfold(text).split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some(p) = parse_line(line) else { continue };
        match (p.name.as_str(), p.value.trim().to_ascii_uppercase().as_str()) {
            ("BEGIN", "VCARD") => cur = Some(Contact::default()),
            ("END", "VCARD") => out.extend(cur.take()),
            _ => {
                if let Some(c) = cur.as_mut() {
                    c.props.push(p);
                }
            }
        }
    }
    out
}

/// Parse one vCard (the first in `text`).
pub fn parse(text: &str) -> Option<Contact> {
    parse_all(text).into_iter().next()
}

fn trim_trailing_empty(mut v: Vec<String>) -> Vec<String> {
    while v.last().is_some_and(|c| c.is_empty()) {
        v.pop();
    }
    v
}

fn types_str(t: &BTreeSet<String>) -> String {
    t.iter().cloned().collect::<Vec<_>>().join(",")
}

/// Canonical form of one compared property (None: empty, ignored).
fn canonical(p: &Property) -> Option<String> {
    let s = match p.name.as_str() {
        "N" | "ADR" | "ORG" => {
            let comps = trim_trailing_empty(p.components());
            if comps.is_empty() {
                return None;
            }
            let mut s = comps.join(" ; ");
            if p.name == "ADR" {
                s = format!("[{}] {s}", types_str(&p.types()));
            }
            s
        }
        "FN" | "NOTE" => {
            let t = p.text();
            if t.is_empty() {
                return None;
            }
            t
        }
        "TEL" | "EMAIL" => {
            let t = p.text();
            if t.is_empty() {
                return None;
            }
            let default = if p.name == "TEL" { "VOICE" } else { "INTERNET" };
            let mut types = p.types();
            types.remove(default);
            format!("[{}] {}", types_str(&types), t.trim())
        }
        "CATEGORIES" => {
            let set: BTreeSet<String> = p.list().into_iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
            if set.is_empty() {
                return None;
            }
            set.into_iter().collect::<Vec<_>>().join(", ")
        }
        "BDAY" => {
            let t = p.text();
            if t.trim().is_empty() {
                return None;
            }
            let (date, time) = t.trim().split_once('T').map(|(d, t)| (d.to_string(), Some(t.to_string()))).unwrap_or((t.trim().to_string(), None));
            let date = date.replace('-', "");
            match time {
                Some(t) => format!("{date}T{t}"),
                None => date,
            }
        }
        "PHOTO" => {
            if p.value.trim().is_empty() {
                return None;
            }
            match p.binary() {
                Some(bytes) => {
                    let ty = p
                        .types()
                        .into_iter()
                        .next()
                        .map(|t| t.trim_start_matches("IMAGE/").to_string())
                        .or_else(|| p.value.strip_prefix("data:image/").and_then(|r| r.split(';').next()).map(|t| t.to_ascii_uppercase()))
                        .unwrap_or_default();
                    format!("[{ty}] {} bytes, fnv64 {:016x}", bytes.len(), fnv64(&bytes))
                }
                None => format!("[not inline] {}", p.value),
            }
        }
        _ => {
            let t = p.text();
            if t.is_empty() {
                return None;
            }
            t
        }
    };
    Some(s)
}

pub fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ *x as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Canonical multiset of the compared properties.
pub fn canonical_fields(c: &Contact) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &c.props {
        if !COMPARED.contains(&p.name.as_str()) {
            continue;
        }
        if let Some(s) = canonical(p) {
            m.entry(p.name.clone()).or_default().push(s);
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// Differences between the expected and the actual contact in the compared
/// properties (empty = equal up to [`ALLOWED_REWRITES`]).
pub fn compare(expected: &Contact, actual: &Contact) -> Vec<String> {
    let e = canonical_fields(expected);
    let a = canonical_fields(actual);
    let mut diffs = vec![];
    for name in COMPARED {
        let ev = e.get(*name).cloned().unwrap_or_default();
        let av = a.get(*name).cloned().unwrap_or_default();
        if ev != av {
            diffs.push(format!("{name}: expected {ev:?}, got {av:?}"));
        }
    }
    diffs
}

/// Match expected contacts to stored ones by [`Contact::key`] and compare
/// all of them. Returns a list of problems (missing, unexpected, duplicate
/// keys, field differences), empty when the sets are equal.
pub fn compare_sets(expected: &[Contact], actual: &[(String, Contact)]) -> Vec<String> {
    let mut problems = vec![];
    let mut by_key: BTreeMap<String, Vec<&(String, Contact)>> = BTreeMap::new();
    for item in actual {
        match item.1.key() {
            Some(k) => by_key.entry(k).or_default().push(item),
            None => problems.push(format!("stored item {} has no test key EMAIL: {:?}", item.0, item.1.text("FN"))),
        }
    }
    for exp in expected {
        let key = exp.key().expect("expected contact without key");
        match by_key.remove(&key) {
            None => problems.push(format!("{key}: missing on the server")),
            Some(found) => {
                if found.len() > 1 {
                    problems.push(format!("{key}: {} copies on the server ({:?})", found.len(), found.iter().map(|f| &f.0).collect::<Vec<_>>()));
                }
                for d in compare(exp, &found[0].1) {
                    problems.push(format!("{key} (server item {}): {d}", found[0].0));
                }
            }
        }
    }
    for (k, items) in by_key {
        problems.push(format!("{k}: unexpected on the server (items {:?})", items.iter().map(|i| &i.0).collect::<Vec<_>>()));
    }
    problems
}

// ------------------------------------------------------------------ generator

/// Small deterministic PRNG (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// A test contact as fields; [`ContactSpec::to_vcard`] renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactSpec {
    pub index: usize,
    /// N: family, given, additional, prefix, suffix.
    pub name: [String; 5],
    pub formatted: String,
    /// (TYPE values, number)
    pub tels: Vec<(Vec<String>, String)>,
    /// (TYPE values, address); the first is the test key.
    pub emails: Vec<(Vec<String>, String)>,
    /// (TYPE, [po box, ext, street, locality, region, code, country])
    pub adr: Option<(String, [String; 7])>,
    pub note: Option<String>,
    pub org: Option<(String, String)>,
    pub categories: Vec<String>,
    /// YYYY-MM-DD
    pub bday: Option<String>,
    /// PNG bytes
    pub photo: Option<Vec<u8>>,
}

// (family, given) per script
const LATIN: &[(&str, &str)] = &[
    ("Müller", "Jürgen"), ("García Núñez", "José"), ("Lefèvre", "Élodie"), ("Øvergård", "Søren"),
    ("Kowalski", "Łukasz"), ("Dvořák", "Zoë"), ("O'Brien", "Siobhán"), ("Yılmaz", "Oğuz"),
    ("Nguyễn", "An"), ("Schröder", "François"), ("Brown", "Emily"), ("Meier-Lüdenscheid", "Ana María"),
];
const CHINESE: &[(&str, &str)] = &[("王", "伟"), ("李", "娜"), ("张", "敏"), ("刘", "洋"), ("陈", "静"), ("黄", "丽")];
const JAPANESE: &[(&str, &str)] = &[("佐藤", "健"), ("鈴木", "花子"), ("高橋", "翔太"), ("田中", "さくら"), ("渡辺", "ゆうき")];
const KOREAN: &[(&str, &str)] = &[("김", "민준"), ("이", "서연"), ("박", "지훈"), ("최", "수빈"), ("정", "하은")];
const CYRILLIC: &[(&str, &str)] = &[("Иванов", "Сергей"), ("Смирнова", "Анна"), ("Петренко", "Олександр"), ("Кузнецов", "Дмитрий"), ("Попова", "Ёлка")];
const ARABIC: &[(&str, &str)] = &[("الحسن", "محمد"), ("المنصوري", "فاطمة"), ("حداد", "يوسف"), ("خوري", "ليلى")];
const GREEK: &[(&str, &str)] = &[("Παπαδόπουλος", "Γιώργος"), ("Οικονόμου", "Ελένη"), ("Νικολάου", "Δημήτρης"), ("Γεωργίου", "Μαρία")];

const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Berlin", "BE", "10115", "Germany"), ("München", "BY", "80331", "Deutschland"),
    ("Zürich", "ZH", "8001", "Switzerland"), ("Kraków", "", "30-001", "Polska"),
    ("São Paulo", "SP", "01000-000", "Brasil"), ("北京", "", "100000", "中国"),
    ("東京", "東京都", "100-0001", "日本"), ("서울", "", "04524", "대한민국"),
    ("Москва", "", "101000", "Россия"), ("دبي", "", "00000", "الإمارات"), ("Αθήνα", "", "10552", "Ελλάδα"),
];
const STREETS: &[&str] = &["Hauptstraße", "Königsallee", "Rue de la Paix", "ul. Floriańska", "长安街", "Тверская ул.", "Οδός Ερμού", "Main Street, Unit"];
const ORGS: &[(&str, &str)] = &[
    ("Müller & Söhne KG", "R&D"), ("ACME GmbH", "Einkauf"), ("Example Corp.", "Sales"),
    ("Universität Wien", "Institut für Informatik"), ("株式会社テスト", "開発部"), ("ООО Ромашка", "Бухгалтерия"),
];
const NOTES: &[&str] = &[
    "Met at FOSDEM, likes coffee; ask about the project",
    "Line one\nline two, with comma; and a semicolon",
    "Übergabe: Schlüssel im Büro; Code 1234, bitte\nnicht vergessen",
    "备注：周五下午联系, 电话; 邮件",
    "Path C:\\Users\\test; backslash kept",
    "Allergic to nuts, prefers e-mail\n\nTwo blank lines above; ok",
];
const CATEGORIES: &[&str] = &["Family", "Friends", "Work", "VIP", "Business", "Sport, Verein", "Ärzte"];

fn ascii_local(s: &str, i: usize) -> String {
    let t: String = s
        .chars()
        .map(|c| match c {
            'ä' | 'á' | 'à' | 'ã' => 'a',
            'ö' | 'ó' | 'ø' | 'Ø' => 'o',
            'ü' | 'ú' => 'u',
            'é' | 'è' | 'ë' | 'É' | 'ễ' => 'e',
            'ł' | 'Ł' => 'l',
            'ñ' => 'n',
            'ř' => 'r',
            'ğ' => 'g',
            'ı' | 'í' => 'i',
            'ç' => 'c',
            c => c,
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    if t.is_empty() {
        format!("user{i}")
    } else {
        t
    }
}

impl ContactSpec {
    /// The `n`-th contact of run `run` (deterministic for (seed, n)).
    pub fn generate(run: &str, seed: u64, n: usize) -> ContactSpec {
        let mut r = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(n as u64));
        let (script, names): (&str, &[(&str, &str)]) = match n % 7 {
            0 | 6 => ("latin", LATIN),
            1 => ("zh", CHINESE),
            2 => ("ja", JAPANESE),
            3 => ("ko", KOREAN),
            4 => ("cyrillic", CYRILLIC),
            _ => if n.is_multiple_of(2) { ("ar", ARABIC) } else { ("el", GREEK) },
        };
        let (fam, giv) = *r.pick(names);
        let (name, formatted) = if script == "latin" {
            let prefix = ["", "", "Dr.", "Prof."][r.below(4)];
            let middle = ["", "", "Maria", "J."][r.below(4)];
            let suffix = ["", "", "", "Jr."][r.below(4)];
            let fmt = [prefix, giv, middle, fam, suffix].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" ");
            ([fam, giv, middle, prefix, suffix].map(String::from), fmt)
        } else if matches!(script, "zh" | "ja" | "ko") {
            ([fam, giv, "", "", ""].map(String::from), format!("{fam}{giv}"))
        } else {
            ([fam, giv, "", "", ""].map(String::from), format!("{giv} {fam}"))
        };
        let local = format!("{}.{}", ascii_local(giv, n), ascii_local(fam, n));
        let mut tels = vec![(vec!["CELL".to_string()], format!("+49 15{} {:07}", 1 + r.below(9), r.below(10_000_000)))];
        let extra_tel: &[(&[&str], &str)] = &[(&["HOME", "VOICE"], "+49 30"), (&["WORK", "VOICE"], "+49 89"), (&["WORK", "FAX"], "+41 44"), (&["HOME"], "+86 10")];
        for _ in 0..r.below(3) {
            let (types, prefix) = r.pick(extra_tel);
            tels.push((types.iter().map(|t| t.to_string()).collect(), format!("{prefix} {}", 1_000_000 + r.below(9_000_000))));
        }
        let mut emails = vec![(vec!["HOME".to_string()], format!("{local}+c{run}-{n:04}@example.org"))];
        if r.below(2) == 0 {
            emails.push((vec!["WORK".to_string()], format!("{local}@work.example.com")));
        }
        let adr = (n % 3 != 2).then(|| {
            let (city, region, code, country) = *r.pick(CITIES);
            let street = format!("{} {}", r.pick(STREETS), 1 + r.below(200));
            let pobox = if r.below(4) == 0 { "Postfach 12".to_string() } else { String::new() };
            let ext = if r.below(3) == 0 { "Geb. 3, Hof; links".to_string() } else { String::new() };
            (
                if r.below(2) == 0 { "HOME" } else { "WORK" }.to_string(),
                [pobox, ext, street, city.into(), region.into(), code.into(), country.into()],
            )
        });
        let note = (n % 5 != 4).then(|| format!("{} [#{n}]", r.pick(NOTES)));
        let org = (n % 4 != 3).then(|| {
            let (o, d) = *r.pick(ORGS);
            (o.to_string(), d.to_string())
        });
        let categories = if n.is_multiple_of(2) {
            let a = r.pick(CATEGORIES).to_string();
            let b = r.pick(CATEGORIES).to_string();
            if a == b { vec![a] } else { vec![a, b] }
        } else {
            vec![]
        };
        let bday = (n % 5 != 3).then(|| format!("{:04}-{:02}-{:02}", 1940 + r.below(70), 1 + r.below(12), 1 + r.below(28)));
        let photo = (n % 10 == 1).then(|| crate::png::png(8 + (n % 9) as u32, 8 + (n % 5) as u32, seed ^ (n as u64) << 8));
        ContactSpec { index: n, name, formatted, tels, emails, adr, note, org, categories, bday, photo }
    }

    /// The test key (first EMAIL).
    pub fn key(&self) -> &str {
        &self.emails[0].1
    }

    /// vCard 3.0 text (CRLF, folded at 75 octets); with `uid` for ModifyContacts.
    pub fn to_vcard(&self, uid: Option<&str>) -> String {
        let mut lines = vec!["BEGIN:VCARD".to_string(), "VERSION:3.0".to_string()];
        if let Some(u) = uid {
            lines.push(format!("UID:{u}"));
        }
        lines.push(format!("N:{}", self.name.iter().map(|c| escape(c)).collect::<Vec<_>>().join(";")));
        lines.push(format!("FN:{}", escape(&self.formatted)));
        for (t, v) in &self.tels {
            lines.push(format!("TEL;TYPE={}:{}", t.join(","), v));
        }
        for (t, v) in &self.emails {
            lines.push(format!("EMAIL;TYPE={}:{}", t.join(","), v));
        }
        if let Some((t, a)) = &self.adr {
            lines.push(format!("ADR;TYPE={t}:{}", a.iter().map(|c| escape(c)).collect::<Vec<_>>().join(";")));
        }
        if let Some(n) = &self.note {
            lines.push(format!("NOTE:{}", escape(n)));
        }
        if let Some((o, d)) = &self.org {
            lines.push(format!("ORG:{};{}", escape(o), escape(d)));
        }
        if !self.categories.is_empty() {
            lines.push(format!("CATEGORIES:{}", self.categories.iter().map(|c| escape(c)).collect::<Vec<_>>().join(",")));
        }
        if let Some(b) = &self.bday {
            lines.push(format!("BDAY:{b}"));
        }
        if let Some(p) = &self.photo {
            lines.push(format!("PHOTO;ENCODING=b;TYPE=PNG:{}", base64::engine::general_purpose::STANDARD.encode(p)));
        }
        lines.push("END:VCARD".to_string());
        let mut out = String::new();
        for l in lines {
            out.push_str(&fold(&l));
            out.push_str("\r\n");
        }
        out
    }

    /// Parsed form of [`to_vcard`](Self::to_vcard) (for [`compare`]).
    pub fn contact(&self) -> Contact {
        parse(&self.to_vcard(None)).expect("generated vCard parses")
    }

    /// Append `suffix` to the family name (N and FN), e.g. to keep another
    /// phone's contacts from matching these: in a slow sync, SyncEvolution's
    /// server treats an incoming contact with the same name as a duplicate
    /// and MERGES the two into one server item.
    pub fn rename_family(&mut self, suffix: &str) {
        let old = self.name[0].clone();
        self.name[0] = format!("{old}{suffix}");
        self.formatted = self.formatted.replacen(&old, &self.name[0], 1);
    }

    /// A visible edit: new NOTE, one more TEL, changed ORG department.
    pub fn edit(&mut self, tag: &str) {
        self.note = Some(format!("Edited ({tag}); new note, line 1\nline 2 [#{}]", self.index));
        self.tels.push((vec!["WORK".into(), "VOICE".into()], format!("+44 20 7946 {:04}", self.index % 10_000)));
        self.org = Some(("Edited Org, Ltd.".into(), format!("Dept {tag}")));
    }
}

/// Fold a content line at 75 octets (not inside a UTF-8 sequence).
pub fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if n + len > 75 {
            out.push_str("\r\n ");
            n = 1;
        }
        out.push(c);
        n += len;
    }
    out
}

/// `count` contacts of run `run`.
pub fn generate(run: &str, seed: u64, count: usize) -> Vec<ContactSpec> {
    (0..count).map(|n| ContactSpec::generate(run, seed, n)).collect()
}

/// Human-readable one-line summary of a contact.
pub fn summary(c: &Contact) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", c.text("FN").unwrap_or_default());
    for p in c.all("TEL") {
        let _ = write!(s, " | TEL {}", p.text());
    }
    for p in c.all("EMAIL") {
        let _ = write!(s, " | {}", p.text());
    }
    if c.first("PHOTO").and_then(|p| p.binary()).is_some() {
        s.push_str(" | PHOTO");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_generated() {
        for n in 0..60 {
            let spec = ContactSpec::generate("r1", 7, n);
            let v = spec.to_vcard(Some("x"));
            assert!(v.lines().all(|l| l.len() <= 75), "{v}");
            let c = parse(&v).unwrap();
            assert_eq!(c.key().as_deref(), Some(spec.key()));
            assert!(compare(&spec.contact(), &c).is_empty());
            if let Some(p) = &spec.photo {
                assert_eq!(c.first("PHOTO").unwrap().binary().as_ref(), Some(p));
                assert!(crate::png::is_valid_png(p));
            }
            if let Some(n) = &spec.note {
                assert_eq!(&c.text("NOTE").unwrap(), n);
            }
        }
    }

    #[test]
    fn server_rewrites_are_tolerated() {
        let sent = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:t1\r\nN:Müller;Jürgen;;;\r\nFN:Jürgen Müller\r\n\
TEL;TYPE=CELL:+49 151 1\r\nTEL;TYPE=HOME,VOICE:+49 30 1\r\nEMAIL;TYPE=HOME:j+c1-0001@example.org\r\n\
ADR;TYPE=WORK:;Geb. 3\\, Hof;Königsallee 1;Düsseldorf;;40212;Deutschland\r\nNOTE:a\\, b\\; c\\nd\r\n\
ORG:Müller & Söhne KG;R&D\r\nCATEGORIES:VIP,Family\r\nBDAY:1970-03-21\r\nEND:VCARD\r\n";
        let stored = "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Synthesis AG//NONSGML SyncML Engine V3.4.0.47//EN\r\n\
REV:20100328T103410Z\r\nN:Müller;Jürgen;;;\r\nFN:Jürgen Müller\r\nX-EVOLUTION-FILE-AS:\r\nNICKNAME:\r\n\
CATEGORIES:Family,VIP\r\nORG:Müller & Söhne KG;R&D;;\r\nROLE:\r\nTEL;TYPE=cell:+49 151 1\r\nTEL;TYPE=HOME:+49 30 1\r\n\
EMAIL;TYPE=HOME,INTERNET:j+c1-0001@example.org\r\nURL:\r\nADR;TYPE=WORK:;Geb. 3\\, Hof;Königsallee 1;Düsseldorf;;40212\r\n ;Deutschland\r\n\
BDAY:19700321\r\nNOTE:a\\, b\\; c\\nd\r\nPHOTO:\r\nGEO:;\r\nEND:VCARD\r\n";
        let d = compare(&parse(sent).unwrap(), &parse(stored).unwrap());
        assert!(d.is_empty(), "{d:?}");
        let changed = stored.replace("NOTE:a\\, b", "NOTE:a\\, B");
        assert_eq!(compare(&parse(sent).unwrap(), &parse(&changed).unwrap()).len(), 1);
    }
}
