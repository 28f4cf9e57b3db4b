//! An encoding-neutral element tree: what the XML and WBXML codecs
//! produce on decode and consume on encode.

use super::DecodeError;

/// One element: local name, optional namespace to declare on encode,
/// concatenated character data, child elements and (after decode) the byte
/// offset of its start tag in the input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    /// Namespace declared on this element when encoding (`xmlns='...'`).
    /// Decoders leave it `None`: namespaces are not checked on input.
    pub ns: Option<&'static str>,
    pub text: String,
    /// Binary content (WBXML `OPAQUE`): item data that need not be UTF-8.
    /// The XML codec writes it as (lossy UTF-8) text and never produces it;
    /// the WBXML codec writes it as `OPAQUE` and produces it for `OPAQUE`
    /// content that is not a nested document.
    pub opaque: Option<Vec<u8>>,
    pub children: Vec<Element>,
    pub pos: u64,
}

impl Element {
    pub fn new(name: &str) -> Self {
        Element { name: name.to_string(), ..Element::default() }
    }

    pub fn with_ns(mut self, ns: &'static str) -> Self {
        self.ns = Some(ns);
        self
    }

    /// `<name>text</name>`
    pub fn leaf(name: &str, text: impl Into<String>) -> Self {
        Element { name: name.to_string(), text: text.into(), ..Element::default() }
    }

    pub fn push(&mut self, child: Element) -> &mut Self {
        self.children.push(child);
        self
    }

    pub fn push_leaf(&mut self, name: &str, text: impl Into<String>) {
        self.children.push(Element::leaf(name, text));
    }

    /// `<name>` with binary content (WBXML OPAQUE; text in XML).
    pub fn push_opaque(&mut self, name: &str, bytes: Vec<u8>) {
        self.children.push(Element { name: name.to_string(), opaque: Some(bytes), ..Element::default() });
    }

    /// The element's content as bytes: its text followed by its opaque data.
    pub fn content_bytes(&self) -> Vec<u8> {
        let mut v = self.text.as_bytes().to_vec();
        if let Some(o) = &self.opaque {
            v.extend_from_slice(o);
        }
        v
    }

    pub fn push_opt_leaf(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.push_leaf(name, t);
        }
    }

    /// `<name/>` if `flag`.
    pub fn push_flag(&mut self, name: &str, flag: bool) {
        if flag {
            self.children.push(Element::new(name));
        }
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.child(name).is_some()
    }

    /// Trimmed text of a child element.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.str_content().trim())
    }

    /// The text, or (if there is none) the opaque content when it is UTF-8:
    /// some WBXML encoders send numbers and strings as OPAQUE.
    pub fn str_content(&self) -> &str {
        match &self.opaque {
            Some(o) if self.text.is_empty() => std::str::from_utf8(o).unwrap_or(""),
            _ => &self.text,
        }
    }

    pub fn child_string(&self, name: &str) -> Option<String> {
        self.child_text(name).map(str::to_string)
    }

    pub fn required_text(&self, name: &'static str) -> Result<String, DecodeError> {
        self.child_string(name).ok_or_else(|| DecodeError::MissingElement {
            parent: self.name.clone(),
            element: name,
            position: self.pos,
        })
    }

    /// Parse a child's text as a number (`None` if the child is absent).
    pub fn child_number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, DecodeError> {
        match self.child(name) {
            None => Ok(None),
            Some(c) => c.number().map(Some),
        }
    }

    /// Parse this element's own text as a number.
    pub fn number<T: std::str::FromStr>(&self) -> Result<T, DecodeError> {
        let t = self.str_content().trim();
        t.parse::<T>().map_err(|_| DecodeError::InvalidNumber {
            element: self.name.clone(),
            value: t.chars().take(40).collect(),
            position: self.pos,
        })
    }
}
