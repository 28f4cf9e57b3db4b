//! The unified profile: an IM account and the sync settings that travel with it,
//! and the validation of the key/value settings a chat app hands over.

use std::collections::BTreeMap;

use crate::class::{DataClass, SyncMode};

use super::ProfileError;

/// A setting value as received from a client (the D-Bus layer converts its variants to this).
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Str(String),
    Bool(bool),
    /// An array of strings (`as`).
    StrList(Vec<String>),
    /// Any other type; `type_name` says which (e.g. the D-Bus signature), for the error message.
    Other { type_name: String },
}

impl SettingValue {
    /// The D-Bus signature of the value, for error messages.
    pub fn type_name(&self) -> String {
        match self {
            SettingValue::Str(_) => "s".into(),
            SettingValue::Bool(_) => "b".into(),
            SettingValue::StrList(_) => "as".into(),
            SettingValue::Other { type_name } => type_name.clone(),
        }
    }
}

/// Per data class: which remote database, which mode, on or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSettings {
    pub remote_uri: String,
    pub mode: SyncMode,
    pub enabled: bool,
}

impl ClassSettings {
    /// The defaults for a class: remote database named like the class, backup mode, and
    /// enabled only for the classes this version can read from the phone.
    pub fn default_for(class: DataClass) -> Self {
        ClassSettings {
            remote_uri: class.as_str().to_string(),
            mode: SyncMode::OneWayFromClient,
            enabled: class_has_source(class),
        }
    }
}

/// Whether this build has a phone-side source for the class.
pub fn class_has_source(class: DataClass) -> bool {
    matches!(
        class,
        DataClass::Contacts | DataClass::Calendar | DataClass::Tasks | DataClass::Notes | DataClass::Sms | DataClass::Roster
    )
}

/// One IM account and its sync configuration (the password lives in the secret store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub protocol: String,
    pub im_id: String,
    pub display_name: String,
    pub server_url: String,
    pub username: String,
    /// SHA-256 of the server's certificate (lower-case hex), pinned instead of trusting a CA:
    /// for a self-hosted server on the user's PC.
    pub server_cert_sha256: String,
    pub is_default: bool,
    pub classes: BTreeMap<DataClass, ClassSettings>,
}

impl Account {
    /// The account's name in the API: `<protocol>:<im_id>`.
    pub fn name(&self) -> String {
        account_name(&self.protocol, &self.im_id)
    }

    pub fn new(protocol: &str, im_id: &str) -> Self {
        Account {
            protocol: protocol.to_string(),
            im_id: im_id.to_string(),
            display_name: String::new(),
            server_url: String::new(),
            username: String::new(),
            server_cert_sha256: String::new(),
            is_default: false,
            classes: DataClass::ALL.into_iter().map(|c| (c, ClassSettings::default_for(c))).collect(),
        }
    }

    pub fn class(&self, class: DataClass) -> ClassSettings {
        self.classes.get(&class).cloned().unwrap_or_else(|| ClassSettings::default_for(class))
    }

    /// Apply a validated update (everything but identity and password).
    pub fn apply(&mut self, u: &AccountUpdate) {
        if let Some(v) = &u.display_name {
            self.display_name = v.clone();
        }
        if let Some(v) = &u.server_url {
            self.server_url = v.clone();
        }
        if let Some(v) = &u.username {
            self.username = v.clone();
        }
        if let Some(v) = &u.server_cert_sha256 {
            self.server_cert_sha256 = v.clone();
        }
        for (class, cu) in &u.classes {
            let mut cs = self.class(*class);
            if let Some(uri) = &cu.remote_uri {
                cs.remote_uri = uri.clone();
            }
            if let Some(m) = cu.mode {
                cs.mode = m;
            }
            if let Some(e) = cu.enabled {
                cs.enabled = e;
            }
            self.classes.insert(*class, cs);
        }
    }
}

pub fn account_name(protocol: &str, im_id: &str) -> String {
    format!("{protocol}:{im_id}")
}

/// Split an account name `<protocol>:<im_id>` (the protocol is what comes before the first
/// colon) and validate both parts as `SetAccount` does; the protocol comes back lower-cased.
pub fn parse_account_name(name: &str) -> Result<(String, String), ProfileError> {
    let Some((protocol, im_id)) = name.split_once(':') else {
        return Err(invalid("account", "an account is named '<protocol>:<im_id>', e.g. 'xmpp:alice@example.org'"));
    };
    let u = AccountUpdate::parse(&BTreeMap::from([
        ("protocol".to_string(), SettingValue::Str(protocol.to_string())),
        ("im_id".to_string(), SettingValue::Str(im_id.to_string())),
    ]))?;
    Ok((u.protocol.unwrap_or_default(), u.im_id.unwrap_or_default()))
}

/// A partial update of one class's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassUpdate {
    pub remote_uri: Option<String>,
    pub mode: Option<SyncMode>,
    pub enabled: Option<bool>,
}

/// A validated partial update of an account, as parsed from `SetAccount(a{sv})`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub protocol: Option<String>,
    pub im_id: Option<String>,
    pub display_name: Option<String>,
    pub server_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub server_cert_sha256: Option<String>,
    pub classes: BTreeMap<DataClass, ClassUpdate>,
    /// `is_default`: true makes the account the default one (false is only accepted for an
    /// account that is not the default: there is always one).
    pub is_default: Option<bool>,
    /// `auto_backup`: back up right after the account was created by this call.
    pub auto_backup: Option<bool>,
}

const MAX_VALUE_LEN: usize = 4096;

impl AccountUpdate {
    /// Validate every key; the first problem found is returned as `InvalidArgs` naming the key.
    pub fn parse(settings: &BTreeMap<String, SettingValue>) -> Result<Self, ProfileError> {
        let mut u = AccountUpdate::default();
        for (key, value) in settings {
            match key.as_str() {
                "protocol" => u.protocol = Some(protocol(key, value)?),
                "im_id" => u.im_id = Some(nonempty_str(key, value)?),
                "display_name" => u.display_name = Some(string(key, value)?),
                "server_url" => u.server_url = Some(server_url(key, value)?),
                "username" => u.username = Some(string(key, value)?),
                "password" => u.password = Some(string(key, value)?),
                "server_cert_sha256" => u.server_cert_sha256 = Some(sha256_hex(key, value)?),
                "is_default" => u.is_default = Some(boolean(key, value)?),
                "auto_backup" => u.auto_backup = Some(boolean(key, value)?),
                _ => {
                    let Some((class, field)) = key.split_once('.') else {
                        return Err(invalid(key, "unknown key"));
                    };
                    let class: DataClass = class.parse().map_err(|_| invalid(key, "unknown key"))?;
                    let cu = u.classes.entry(class).or_default();
                    match field {
                        "uri" => cu.remote_uri = Some(remote_uri(key, value)?),
                        "mode" => {
                            let s = string(key, value)?;
                            cu.mode = Some(s.parse::<SyncMode>().map_err(|e| invalid(key, &e))?);
                        }
                        "enabled" => cu.enabled = Some(boolean(key, value)?),
                        _ => return Err(invalid(key, "unknown key")),
                    }
                }
            }
        }
        if u.protocol.is_some() != u.im_id.is_some() {
            let missing = if u.protocol.is_some() { "im_id" } else { "protocol" };
            return Err(invalid(missing, "'protocol' and 'im_id' name the account and must be given together"));
        }
        Ok(u)
    }

    pub fn account_name(&self) -> Option<String> {
        Some(account_name(self.protocol.as_deref()?, self.im_id.as_deref()?))
    }
}

fn invalid(key: &str, why: &str) -> ProfileError {
    ProfileError::InvalidArgs { key: key.to_string(), reason: why.to_string() }
}

fn string(key: &str, v: &SettingValue) -> Result<String, ProfileError> {
    match v {
        SettingValue::Str(s) if s.len() > MAX_VALUE_LEN => {
            Err(invalid(key, &format!("value longer than {MAX_VALUE_LEN} bytes")))
        }
        SettingValue::Str(s) if s.contains('\0') => Err(invalid(key, "value contains a NUL character")),
        SettingValue::Str(s) => Ok(s.clone()),
        SettingValue::Bool(_) => Err(invalid(key, "expected a string (s), got a boolean (b)")),
        other => Err(invalid(key, &format!("expected a string (s), got '{}'", other.type_name()))),
    }
}

fn nonempty_str(key: &str, v: &SettingValue) -> Result<String, ProfileError> {
    let s = string(key, v)?;
    if s.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(key, "must not contain control characters"));
    }
    Ok(s)
}

fn boolean(key: &str, v: &SettingValue) -> Result<bool, ProfileError> {
    match v {
        SettingValue::Bool(b) => Ok(*b),
        SettingValue::Str(_) => Err(invalid(key, "expected a boolean (b), got a string (s)")),
        other => Err(invalid(key, &format!("expected a boolean (b), got '{}'", other.type_name()))),
    }
}

fn protocol(key: &str, v: &SettingValue) -> Result<String, ProfileError> {
    let s = nonempty_str(key, v)?;
    let ok = s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if !ok {
        return Err(invalid(key, "a protocol name is a short ASCII word such as xmpp, matrix, sip or qq"));
    }
    Ok(s.to_ascii_lowercase())
}

fn remote_uri(key: &str, v: &SettingValue) -> Result<String, ProfileError> {
    let s = nonempty_str(key, v)?;
    if s.chars().any(char::is_whitespace) {
        return Err(invalid(key, "a remote database name must not contain white space"));
    }
    Ok(s)
}

/// A SHA-256 fingerprint: 64 hex digits, colons and spaces allowed; empty clears the pin.
fn sha256_hex(key: &str, v: &SettingValue) -> Result<String, ProfileError> {
    let s = string(key, v)?;
    let hex: String = s.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if hex.is_empty() {
        return Ok(hex);
    }
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(key, "expected the certificate's SHA-256 as 64 hex digits (colons allowed)"));
    }
    Ok(hex)
}

/// An http or https URL with a host. An empty string clears the server.
fn server_url(key: &str, v: &SettingValue) -> Result<String, ProfileError> {
    let s = string(key, v)?;
    if s.is_empty() {
        return Ok(s);
    }
    let url = url::Url::parse(&s).map_err(|e| invalid(key, &format!("not a valid URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(key, &format!("the URL scheme must be http or https, not '{}'", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(key, "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, "put credentials in 'username' and 'password', not in the URL"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, SettingValue)]) -> BTreeMap<String, SettingValue> {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }
    fn s(v: &str) -> SettingValue {
        SettingValue::Str(v.to_string())
    }

    #[test]
    fn parses_a_full_account() {
        let u = AccountUpdate::parse(&map(&[
            ("protocol", s("XMPP")),
            ("im_id", s("alice@example.org")),
            ("server_url", s("https://sync.example.org/syncml")),
            ("contacts.mode", s("two-way")),
            ("contacts.uri", s("card")),
            ("sms.enabled", SettingValue::Bool(true)),
        ]))
        .unwrap();
        assert_eq!(u.account_name().unwrap(), "xmpp:alice@example.org");
        let c = &u.classes[&DataClass::Contacts];
        assert_eq!(c.mode, Some(SyncMode::TwoWay));
        assert_eq!(c.remote_uri.as_deref(), Some("card"));
        assert_eq!(u.classes[&DataClass::Sms].enabled, Some(true));
    }

    #[test]
    fn rejects_bad_input_naming_the_key() {
        let cases: Vec<(Vec<(&str, SettingValue)>, &str)> = vec![
            (vec![("colour", s("blue"))], "colour"),
            (vec![("contacts.colour", s("blue"))], "contacts.colour"),
            (vec![("phonebook.mode", s("slow"))], "phonebook.mode"),
            (vec![("server_url", s("ftp://x"))], "server_url"),
            (vec![("server_url", s("not a url"))], "server_url"),
            (vec![("server_url", s("http://user:pw@host/"))], "server_url"),
            (vec![("contacts.mode", s("sideways"))], "contacts.mode"),
            (vec![("contacts.enabled", s("yes"))], "contacts.enabled"),
            (vec![("username", SettingValue::Bool(true))], "username"),
            (vec![("username", SettingValue::Other { type_name: "u".into() })], "username"),
            (vec![("protocol", s("xmpp"))], "im_id"),
            (vec![("protocol", s("x m p p")), ("im_id", s("a"))], "protocol"),
            (vec![("im_id", s(""))], "im_id"),
            (vec![("server_cert_sha256", s("abc"))], "server_cert_sha256"),
            (vec![("display_name", s(&"x".repeat(5000)))], "display_name"),
            (vec![("is_default", s("yes"))], "is_default"),
            (vec![("auto_backup", SettingValue::StrList(vec![]))], "auto_backup"),
        ];
        for (input, key) in cases {
            match AccountUpdate::parse(&map(&input)) {
                Err(ProfileError::InvalidArgs { key: k, .. }) => assert_eq!(k, key, "input {input:?}"),
                other => panic!("{input:?}: expected InvalidArgs({key}), got {other:?}"),
            }
        }
    }

    #[test]
    fn account_names_split_at_the_first_colon() {
        assert_eq!(
            parse_account_name("Matrix:@bob:example.org").unwrap(),
            ("matrix".to_string(), "@bob:example.org".to_string())
        );
        assert!(parse_account_name("nocolon").is_err());
        assert!(parse_account_name("xmpp:").is_err());
        assert!(parse_account_name("x m:a").is_err());
    }

    #[test]
    fn pin_is_normalised() {
        let fp = "AB:".repeat(31) + "AB";
        let u = AccountUpdate::parse(&map(&[("server_cert_sha256", s(&fp))])).unwrap();
        assert_eq!(u.server_cert_sha256.unwrap(), "ab".repeat(32));
    }

    #[test]
    fn apply_is_partial() {
        let mut a = Account::new("xmpp", "a@b");
        a.server_url = "http://old/".into();
        let u = AccountUpdate::parse(&map(&[("contacts.uri", s("card"))])).unwrap();
        a.apply(&u);
        assert_eq!(a.server_url, "http://old/");
        assert_eq!(a.class(DataClass::Contacts).remote_uri, "card");
        assert_eq!(a.class(DataClass::Contacts).mode, SyncMode::OneWayFromClient);
        assert!(a.class(DataClass::Contacts).enabled);
        assert!(a.class(DataClass::Calendar).enabled);
        assert!(a.class(DataClass::Roster).enabled);
    }
}
