//! An encoding-neutral element tree: what the XML and WBXML codecs
//! produce on decode and consume on encode.
//!
//! The tree borrows where it can, so that building and reading it costs few
//! allocations: element names are `&'static str` (the WBXML code-page
//! tables, the mapping code) unless a decoder met a name it does not know;
//! text and binary content borrow from the decoded input or from the
//! message being encoded (`'a`), and are owned only when they had to be
//! assembled (several text pieces, entities, numbers).

use std::borrow::Cow;

use super::DecodeError;

/// One element: local name, optional namespace to declare on encode,
/// concatenated character data, child elements and (after decode) the byte
/// offset of its start tag in the input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element<'a> {
    pub name: Cow<'static, str>,
    /// Namespace declared on this element when encoding (`xmlns='...'`).
    /// Decoders leave it `None`: namespaces are not checked on input.
    pub ns: Option<&'static str>,
    pub text: Cow<'a, str>,
    /// Binary content (WBXML `OPAQUE`): item data that need not be UTF-8.
    /// The XML codec writes it as (lossy UTF-8) text and never produces it;
    /// the WBXML codec writes it as `OPAQUE` and produces it for `OPAQUE`
    /// content that is not a nested document.
    pub opaque: Option<Cow<'a, [u8]>>,
    pub children: Vec<Element<'a>>,
    pub pos: u64,
}

impl<'a> Element<'a> {
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Element { name: name.into(), ..Element::default() }
    }

    /// An element with room for `n` children.
    pub fn with_capacity(name: &'static str, n: usize) -> Self {
        Element { name: Cow::Borrowed(name), children: Vec::with_capacity(n), ..Element::default() }
    }

    pub fn with_ns(mut self, ns: &'static str) -> Self {
        self.ns = Some(ns);
        self
    }

    /// `<name>text</name>`
    pub fn leaf(name: impl Into<Cow<'static, str>>, text: impl Into<Cow<'a, str>>) -> Self {
        Element { name: name.into(), text: text.into(), ..Element::default() }
    }

    pub fn push(&mut self, child: Element<'a>) -> &mut Self {
        self.children.push(child);
        self
    }

    pub fn push_leaf(&mut self, name: &'static str, text: impl Into<Cow<'a, str>>) {
        self.children.push(Element::leaf(name, text));
    }

    /// `<name>` with binary content (WBXML OPAQUE; text in XML).
    pub fn push_opaque(&mut self, name: &'static str, bytes: impl Into<Cow<'a, [u8]>>) {
        self.children.push(Element { name: Cow::Borrowed(name), opaque: Some(bytes.into()), ..Element::default() });
    }

    /// The element's content as bytes: its text followed by its opaque data.
    pub fn content_bytes(&self) -> Vec<u8> {
        let o = self.opaque.as_deref().unwrap_or_default();
        let mut v = Vec::with_capacity(self.text.len() + o.len());
        v.extend_from_slice(self.text.as_bytes());
        v.extend_from_slice(o);
        v
    }

    pub fn push_opt_leaf(&mut self, name: &'static str, text: Option<&'a str>) {
        if let Some(t) = text {
            self.push_leaf(name, t);
        }
    }

    /// `<name/>` if `flag`.
    pub fn push_flag(&mut self, name: &'static str, flag: bool) {
        if flag {
            self.children.push(Element::new(name));
        }
    }

    pub fn child(&self, name: &str) -> Option<&Element<'a>> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Element<'a>> + 's {
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
            parent: self.name.to_string(),
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
            element: self.name.to_string(),
            value: t.chars().take(40).collect(),
            position: self.pos,
        })
    }
}

/// Assembles a decoded tree: the children of all open elements share one
/// vector, and an element's children move into a vector of exactly their
/// number when it closes (one allocation per element with children, none
/// per leaf, no regrowth).
#[derive(Default)]
pub(crate) struct TreeBuilder<'a> {
    /// Open elements, each with the index in `pending` where its children start.
    open: Vec<(Element<'a>, usize)>,
    pending: Vec<Element<'a>>,
    root: Option<Element<'a>>,
}

impl<'a> TreeBuilder<'a> {
    pub(crate) fn depth(&self) -> usize {
        self.open.len()
    }

    pub(crate) fn has_root(&self) -> bool {
        self.root.is_some()
    }

    /// The innermost open element.
    pub(crate) fn top(&mut self) -> Option<&mut Element<'a>> {
        self.open.last_mut().map(|(e, _)| e)
    }

    pub(crate) fn open(&mut self, el: Element<'a>) {
        self.open.push((el, self.pending.len()));
    }

    /// Add a complete element (a leaf, or a nested document's root).
    pub(crate) fn add(&mut self, el: Element<'a>) {
        if self.open.is_empty() {
            self.root = Some(el);
        } else {
            self.pending.push(el);
        }
    }

    /// Close the innermost open element (`false` if none is open).
    pub(crate) fn close(&mut self) -> bool {
        let Some((mut el, start)) = self.open.pop() else { return false };
        if start < self.pending.len() {
            let mut children = Vec::with_capacity(self.pending.len() - start);
            children.extend(self.pending.drain(start..));
            el.children = children;
        }
        self.add(el);
        true
    }

    /// The root, once complete.
    pub(crate) fn finish(self) -> Option<Element<'a>> {
        self.root
    }
}
