//! A corpus of hostile SyncML server answers, shared by
//! `syncml/tests/hostile_session.rs` (the sans-IO session fed directly) and
//! the harness' hostile HTTP server (`tests/src/hostile.rs`, the real daemon).
//!
//! A [`Peer`] plays a small, well-behaved SyncML server (statuses for every
//! command, an Alert per store, Final where due, optionally server items so
//! that the client sends a Map). Each [`Case`] replaces the peer's answer to
//! some client messages ([`When`]) by something hostile ([`Action`]). The
//! only dependency is the `syncml` crate (types and codecs).

use syncml::codec::Encoding;
use syncml::types::*;

/// One HTTP answer (or what the HTTP server does instead of answering).
#[derive(Debug, Clone)]
pub enum Action {
    Reply { status: u16, content_type: Option<String>, headers: Vec<(String, String)>, body: Vec<u8> },
    /// Raw bytes written to the socket instead of an HTTP response (the HTTP
    /// server only; the sans-IO test treats it as a transport error).
    Raw(Vec<u8>),
    /// An endless chunked body (the HTTP server stops after `limit` bytes).
    EndlessChunked { limit: u64 },
    /// Close the connection without answering.
    Close,
}

/// Which client messages (0-based, in the session) get the hostile answer.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// Exactly the n-th.
    Msg(usize),
    /// Every message of the client's first package (MsgID 1: also when the
    /// client starts over, e.g. in XML after a WBXML failure; it carries our
    /// DevInf only when the server does not have it yet).
    Init,
    /// The n-th and every later one.
    From(usize),
    /// The first client message carrying this command (e.g. "Sync", "Map").
    Cmd(&'static str),
    /// The first client message carrying this command and every later one.
    FromCmd(&'static str),
}

/// What an answer is built from.
pub struct Ctx<'a> {
    /// The client's message (decoded).
    pub client: &'a Message,
    /// What the well-behaved peer answers.
    pub benign: Message,
    /// The client's encoding (answers use it unless the case says otherwise).
    pub enc: Encoding,
}

impl Ctx<'_> {
    /// `m` encoded like the client's message, HTTP 200.
    pub fn ok(&self, m: &Message) -> Action {
        reply(200, Some(self.enc.content_type()), self.enc.encode(m))
    }
    pub fn ok_bytes(&self, body: Vec<u8>) -> Action {
        reply(200, Some(self.enc.content_type()), body)
    }
    pub fn benign_bytes(&self) -> Vec<u8> {
        self.enc.encode(&self.benign)
    }
}

pub fn reply(status: u16, content_type: Option<&str>, body: Vec<u8>) -> Action {
    Action::Reply { status, content_type: content_type.map(String::from), headers: vec![], body }
}

/// One hostile behaviour.
pub struct Case {
    pub name: &'static str,
    pub when: When,
    pub make: fn(&Ctx) -> Action,
    /// Only meaningful for the HTTP server (the sans-IO test skips it).
    pub http_only: bool,
}

impl Case {
    /// Whether client message `n` (which carries `cmds`) gets the hostile
    /// answer; `seen` tells whether an earlier one already matched a `Cmd`.
    pub fn applies(&self, n: usize, client: &Message, seen_cmd: &mut bool) -> bool {
        let cmds = command_names(client);
        match self.when {
            When::Msg(m) => n == m,
            When::Init => client.hdr.msg_id.trim() == "1",
            When::From(m) => n >= m,
            When::Cmd(c) => {
                if !*seen_cmd && cmds.contains(&c) {
                    *seen_cmd = true;
                    true
                } else {
                    false
                }
            }
            When::FromCmd(c) => {
                if cmds.contains(&c) {
                    *seen_cmd = true;
                }
                *seen_cmd
            }
        }
    }
}

pub fn command_names(m: &Message) -> Vec<&str> {
    m.body.iter().map(|c| c.name()).collect()
}

// ------------------------------------------------------------------ peer

/// A small well-behaved server.
pub struct Peer {
    pub url: String,
    pub max_msg_size: u64,
    msg_id: u32,
    /// Server Adds sent in package 4 per alerted store (two-way modes only),
    /// so that the client sends a Map.
    pub server_items: usize,
    sent_items: bool,
    /// Last anchors the client sent per store (for the anchor checks).
    pub client_anchors: Vec<(String, Option<String>, Option<String>, u16)>,
    /// Next anchor the server gives.
    pub server_next: String,
}

impl Peer {
    pub fn new(url: &str) -> Peer {
        Peer {
            url: url.to_string(),
            max_msg_size: 150_000,
            msg_id: 0,
            server_items: 0,
            sent_items: false,
            client_anchors: vec![],
            server_next: "srv-next".into(),
        }
    }

    fn status(mr: &str, cmd_ref: &str, cmd: &str, code: u16, source: Option<&str>) -> Command {
        Command::Status(Status {
            msg_ref: mr.into(),
            cmd_ref: cmd_ref.into(),
            cmd: cmd.into(),
            source_refs: source.into_iter().map(String::from).collect(),
            data: code,
            ..Status::default()
        })
    }

    /// The answer to client message `m`.
    pub fn answer(&mut self, m: &Message) -> Message {
        self.msg_id += 1;
        let mut out = Message {
            hdr: SyncHdr {
                ver_dtd: m.hdr.ver_dtd.clone(),
                ver_proto: m.hdr.ver_proto.clone(),
                session_id: m.hdr.session_id.clone(),
                msg_id: self.msg_id.to_string(),
                target: m.hdr.source.clone(),
                source: Location::new(self.url.clone()),
                meta: Some(Meta { max_msg_size: Some(self.max_msg_size), ..Meta::default() }),
                ..SyncHdr::default()
            },
            body: vec![],
            final_: false,
        };
        let mr = m.hdr.msg_id.clone();
        out.body.push(Command::Status(Status {
            msg_ref: mr.clone(),
            cmd_ref: "0".into(),
            cmd: "SyncHdr".into(),
            target_refs: vec![m.hdr.target.loc_uri.clone()],
            source_refs: vec![m.hdr.source.loc_uri.clone()],
            data: if m.hdr.cred.is_some() { 212 } else { 200 },
            ..Status::default()
        }));
        let mut alerts = vec![];
        let mut syncs = vec![];
        for c in &m.body {
            match c {
                Command::Alert(a) => {
                    out.body.push(Self::status(&mr, &a.cmd_id, "Alert", 200, None));
                    if a.data != Some(222) {
                        let Some(it) = a.items.first() else { continue };
                        let anchor = it.meta.as_ref().and_then(|m| m.anchor.clone()).unwrap_or_default();
                        let local = it.source.as_ref().map(|l| l.loc_uri.clone()).unwrap_or_default();
                        self.client_anchors.push((local, anchor.last.clone(), anchor.next.clone(), a.data.unwrap_or(0)));
                        alerts.push(Command::Alert(Alert {
                            cmd_id: String::new(),
                            data: a.data,
                            items: vec![Item {
                                target: it.source.clone(),
                                source: it.target.clone(),
                                meta: Some(Meta {
                                    anchor: Some(Anchor { last: None, next: Some(self.server_next.clone()) }),
                                    ..Meta::default()
                                }),
                                ..Item::default()
                            }],
                            ..Alert::default()
                        }));
                    }
                }
                Command::Put(p) => out.body.push(Self::status(&mr, &p.cmd_id, "Put", 200, None)),
                Command::Get(g) => out.body.push(Self::status(&mr, &g.cmd_id, "Get", 200, None)),
                Command::Map(mp) => out.body.push(Self::status(&mr, &mp.cmd_id, "Map", 200, None)),
                Command::Results(r) => out.body.push(Self::status(&mr, &r.cmd_id, "Results", 200, None)),
                Command::Sync(s) => {
                    out.body.push(Self::status(&mr, &s.cmd_id, "Sync", 200, None));
                    syncs.push((s.target.clone(), s.source.clone()));
                    for ic in &s.commands {
                        let (Command::Add(x) | Command::Replace(x) | Command::Delete(x)) = ic else { continue };
                        // one status per item (a command may carry several)
                        for it in &x.items {
                            let src = it.source.as_ref().map(|l| l.loc_uri.as_str());
                            let code = if it.more_data {
                                213
                            } else if matches!(ic, Command::Add(_)) {
                                201
                            } else {
                                200
                            };
                            out.body.push(Self::status(&mr, &x.cmd_id, ic.name(), code, src));
                        }
                    }
                }
                _ => {}
            }
        }
        out.body.extend(alerts);
        let is_init = m.body.iter().any(|c| matches!(c, Command::Put(_)) || matches!(c, Command::Alert(a) if a.data != Some(222)));
        if is_init {
            out.final_ = m.final_;
        } else if m.final_ && !syncs.is_empty() && !self.sent_items {
            // package 4: our Sync per store (with items if configured)
            self.sent_items = true;
            for (target, source) in syncs {
                let mut commands = vec![];
                for i in 0..self.server_items {
                    commands.push(Command::Add(ItemCmd {
                        meta: Some(Meta::with_type("text/vcard")),
                        items: vec![Item {
                            source: Some(Location::new(format!("srv{i}"))),
                            data: Some(ItemData::Bytes(
                                format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Server {i}\r\nN:{i};Server;;;\r\nEND:VCARD\r\n").into_bytes(),
                            )),
                            ..Item::default()
                        }],
                        ..ItemCmd::default()
                    }));
                }
                out.body.push(Command::Sync(Sync {
                    target: source,
                    source: target,
                    number_of_changes: Some(commands.len() as u32),
                    commands,
                    ..Sync::default()
                }));
            }
            out.final_ = true;
        } else {
            out.final_ = m.final_;
        }
        renumber(&mut out);
        out
    }
}

/// CmdIDs 1, 2, ... in document order.
pub fn renumber(m: &mut Message) {
    let mut id = 0;
    for c in &mut m.body {
        id += 1;
        match c {
            Command::Status(s) => s.cmd_id = id.to_string(),
            Command::Alert(a) => a.cmd_id = id.to_string(),
            Command::Results(r) => r.cmd_id = id.to_string(),
            Command::Put(p) | Command::Get(p) => p.cmd_id = id.to_string(),
            Command::Sync(s) => {
                s.cmd_id = id.to_string();
                for ic in &mut s.commands {
                    id += 1;
                    if let Command::Add(x) | Command::Replace(x) | Command::Delete(x) = ic {
                        x.cmd_id = id.to_string();
                    }
                }
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------ helpers

fn cut(b: &[u8], keep: usize) -> Vec<u8> {
    b[..keep.min(b.len())].to_vec()
}

fn garbage(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        })
        .collect()
}

/// The benign answer with `f` applied.
fn with(ctx: &Ctx, f: impl FnOnce(&mut Message)) -> Action {
    let mut m = ctx.benign.clone();
    f(&mut m);
    ctx.ok(&m)
}

fn statuses_mut(m: &mut Message) -> impl Iterator<Item = &mut Status> {
    m.body.iter_mut().filter_map(|c| if let Command::Status(s) = c { Some(s) } else { None })
}

fn hdr_status(m: &mut Message) -> &mut Status {
    statuses_mut(m).find(|s| s.cmd_ref == "0").expect("SyncHdr status")
}

fn xml_of(ctx: &Ctx) -> Vec<u8> {
    syncml::codec::xml::encode(&ctx.benign)
}

fn xml_reply(body: Vec<u8>) -> Action {
    reply(200, Some("application/vnd.syncml+xml"), body)
}

/// Minimal XML message around `body_xml` (SyncBody content), with the client's SessionID.
fn xml_msg(ctx: &Ctx, body_xml: &str) -> Vec<u8> {
    format!(
        "<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto><SessionID>{}</SessionID><MsgID>1</MsgID><Target><LocURI>{}</LocURI></Target><Source><LocURI>http://x/</LocURI></Source></SyncHdr><SyncBody>{body_xml}</SyncBody></SyncML>",
        ctx.client.hdr.session_id, ctx.client.hdr.source.loc_uri
    )
    .into_bytes()
}

/// WBXML 1.2 header for SyncML 1.2, UTF-8, empty string table, then `rest`.
fn wbxml_doc(rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0x00, 0x00, 0x00]; // version, public id 0 (string)...
    // public id as string index 0 in the string table: simpler to use the
    // literal form with the -//SYNCML//DTD SyncML 1.2//EN string
    v.truncate(1);
    v.push(0x00); // public id: string table index follows
    v.push(0x00); // index 0
    v.push(0x6a); // charset UTF-8
    let pubid = b"-//SYNCML//DTD SyncML 1.2//EN\0";
    v.push(pubid.len() as u8);
    v.extend_from_slice(pubid);
    v.extend_from_slice(rest);
    v
}

fn ctx_bad_status_data(ctx: &Ctx) -> Action {
    xml_reply(xml_msg(ctx, "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd><Data>abc</Data></Status><Final/>"))
}

// ------------------------------------------------------------------ the corpus

/// Every hostile case (at least 50).
pub fn corpus() -> Vec<Case> {
    fn c(name: &'static str, when: When, make: fn(&Ctx) -> Action) -> Case {
        Case { name, when, make, http_only: false }
    }
    fn h(name: &'static str, when: When, make: fn(&Ctx) -> Action) -> Case {
        Case { name, when, make, http_only: true }
    }
    use When::*;
    vec![
        // --- HTTP level
        c("http-500-first", Init, |_| reply(500, Some("text/plain"), b"Internal Server Error".to_vec())),
        c("http-500-sync", Cmd("Sync"), |_| reply(500, Some("text/plain"), b"boom".to_vec())),
        c("http-503-retry-after", Init, |_| Action::Reply {
            status: 503,
            content_type: Some("text/plain".into()),
            headers: vec![("Retry-After".into(), "99999999".into())],
            body: b"busy".to_vec(),
        }),
        c("http-404", Init, |_| reply(404, Some("text/html"), b"<html>not found</html>".to_vec())),
        c("http-401-plain", Init, |_| reply(401, Some("text/plain"), b"no".to_vec())),
        c("http-302-redirect", Init, |_| Action::Reply {
            status: 302,
            content_type: None,
            headers: vec![("Location".into(), "http://127.0.0.1:1/elsewhere".into())],
            body: vec![],
        }),
        c("http-200-html", Init, |_| reply(200, Some("text/html"), b"<html><body>Welcome to our portal</body></html>".to_vec())),
        c("http-200-json", Cmd("Sync"), |_| reply(200, Some("application/json"), b"{\"error\":\"nope\"}".to_vec())),
        c("http-204-empty", Init, |_| reply(204, None, vec![])),
        c("http-200-empty-body-first", Init, |ctx| ctx.ok_bytes(vec![])),
        c("http-200-empty-body-sync", Cmd("Sync"), |ctx| ctx.ok_bytes(vec![])),
        c("http-200-whitespace", Init, |ctx| ctx.ok_bytes(b" \r\n\t \r\n".to_vec())),
        h("http-absurd-content-length", Init, |ctx| {
            let body = ctx.benign_bytes();
            let mut raw = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: 99999999999999\r\nConnection: close\r\n\r\n",
                ctx.enc.content_type()
            )
            .into_bytes();
            raw.extend_from_slice(&body);
            Action::Raw(raw)
        }),
        h("http-negative-content-length", Init, |_| {
            Action::Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.syncml+xml\r\nContent-Length: -5\r\n\r\n<SyncML/>".to_vec())
        }),
        h("http-garbage-status-line", Init, |_| Action::Raw(b"HTTZ/9.9 abc what\r\n\r\n".to_vec())),
        h("http-endless-headers", Init, |_| {
            let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..200_000 {
                raw.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(40)).as_bytes());
            }
            Action::Raw(raw)
        }),
        h("http-endless-chunked-body", Init, |_| Action::EndlessChunked { limit: 64 * 1024 * 1024 }),
        h("http-close-without-answer-first", Init, |_| Action::Close),
        h("http-close-without-answer-sync", Cmd("Sync"), |_| Action::Close),
        h("http-close-without-answer-map", Cmd("Map"), |_| Action::Close),
        c("http-oversized-20mb", Init, |ctx| {
            let mut b = ctx.benign_bytes();
            b.resize(20 * 1024 * 1024, b' ');
            ctx.ok_bytes(b)
        }),
        // --- truncated / broken bodies
        c("truncated-half-first", Init, |ctx| {
            let b = ctx.benign_bytes();
            ctx.ok_bytes(cut(&b, b.len() / 2))
        }),
        c("truncated-half-sync", Cmd("Sync"), |ctx| {
            let b = ctx.benign_bytes();
            ctx.ok_bytes(cut(&b, b.len() / 2))
        }),
        c("truncated-last-byte", Init, |ctx| {
            let b = ctx.benign_bytes();
            ctx.ok_bytes(cut(&b, b.len() - 1))
        }),
        c("truncated-10-bytes", Init, |ctx| ctx.ok_bytes(cut(&ctx.benign_bytes(), 10))),
        c("truncated-xml-half", Init, |ctx| {
            let b = xml_of(ctx);
            xml_reply(cut(&b, b.len() / 2))
        }),
        c("truncated-wbxml-half", Init, |ctx| {
            let b = syncml::codec::wbxml::encode(&ctx.benign);
            reply(200, Some("application/vnd.syncml+wbxml"), cut(&b, b.len() / 2))
        }),
        c("garbage-4k", Init, |ctx| ctx.ok_bytes(garbage(4096, 7))),
        c("garbage-wbxml-header", Init, |_| reply(200, Some("application/vnd.syncml+wbxml"), {
            let mut v = vec![0x02, 0x9f, 0x53, 0x6a, 0x00];
            v.extend(garbage(2000, 11));
            v
        })),
        c("invalid-utf8-xml", Init, |ctx| {
            let mut b = xml_of(ctx);
            if let Some(p) = b.windows(11).position(|w| w == b"<SessionID>") {
                b.splice(p + 11..p + 11, [0xff, 0xfe, 0xc3, 0x28]);
            }
            xml_reply(b)
        }),
        c("invalid-utf8-wbxml-string", Init, |_| {
            // <SyncML><SyncHdr><VerDTD>STR_I ff fe 00 ...
            reply(200, Some("application/vnd.syncml+wbxml"), wbxml_doc(&[0x6d, 0x6c, 0x71, 0x03, 0xff, 0xfe, 0xc3, 0x28, 0x00, 0x01, 0x01, 0x01]))
        }),
        c("unknown-namespace", Init, |ctx| {
            let b = String::from_utf8_lossy(&xml_of(ctx)).replace("SYNCML:SYNCML1.2", "urn:example:evil").into_bytes();
            xml_reply(b)
        }),
        c("wrong-root-element", Init, |ctx| {
            let b = String::from_utf8_lossy(&xml_of(ctx)).replace("SyncML", "SyncEvil").into_bytes();
            xml_reply(b)
        }),
        c("deep-nesting-xml", Init, |ctx| {
            let mut s = String::new();
            for _ in 0..100_000 {
                s.push_str("<Sync>");
            }
            xml_reply(xml_msg(ctx, &s))
        }),
        c("deep-nesting-wbxml", Init, |_| {
            // SyncML, SyncBody, then 100 000 nested Sync elements with content
            let mut rest = vec![0x6d, 0x6b];
            rest.extend(std::iter::repeat_n(0x6a, 100_000));
            reply(200, Some("application/vnd.syncml+wbxml"), wbxml_doc(&rest))
        }),
        c("xml-entity-bomb", Init, |_| {
            let mut s = String::from("<?xml version=\"1.0\"?><!DOCTYPE SyncML [<!ENTITY a \"aaaaaaaaaa\">");
            let mut prev = 'a';
            for n in ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'] {
                s.push_str(&format!("<!ENTITY {n} \"&{prev};&{prev};&{prev};&{prev};&{prev};&{prev};&{prev};&{prev};&{prev};&{prev};\">"));
                prev = n;
            }
            s.push_str("]><SyncML><SyncHdr><SessionID>&j;</SessionID></SyncHdr><SyncBody/></SyncML>");
            xml_reply(s.into_bytes())
        }),
        c("wbxml-huge-string-table", Init, |_| {
            reply(200, Some("application/vnd.syncml+wbxml"), vec![0x02, 0x9f, 0x53, 0x6a, 0x8f, 0xff, 0xff, 0xff, 0x7f, 0x6d])
        }),
        c("wbxml-opaque-4gb", Init, |_| {
            reply(200, Some("application/vnd.syncml+wbxml"), wbxml_doc(&[0x6d, 0x6c, 0x71, 0xc3, 0x8f, 0xff, 0xff, 0xff, 0x7f, 0x41]))
        }),
        c("wbxml-unknown-codepage", Init, |_| {
            reply(200, Some("application/vnd.syncml+wbxml"), wbxml_doc(&[0x6d, 0x00, 0x7f, 0x45, 0x01, 0x01]))
        }),
        c("wbxml-mb-u-int32-overlong", Init, |_| {
            reply(200, Some("application/vnd.syncml+wbxml"), vec![0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x6a, 0x00, 0x6d])
        }),
        c("two-messages-concatenated", Init, |ctx| {
            let mut b = xml_of(ctx);
            let again = b.clone();
            b.extend(again);
            xml_reply(b)
        }),
        c("status-data-not-a-number", Init, ctx_bad_status_data),
        c("missing-synchdr", Init, |_| xml_reply(b"<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncBody><Final/></SyncBody></SyncML>".to_vec())),
        c("missing-syncbody", Init, |ctx| {
            let s = String::from_utf8_lossy(&xml_of(ctx)).into_owned();
            let cut_at = s.find("<SyncBody>").unwrap_or(s.len());
            xml_reply(format!("{}</SyncML>", &s[..cut_at]).into_bytes())
        }),
        // --- header and status semantics
        c("wrong-msgref-everywhere", Init, |ctx| with(ctx, |m| statuses_mut(m).for_each(|s| s.msg_ref = "97".into()))),
        c("wrong-msgref-sync", FromCmd("Sync"), |ctx| with(ctx, |m| statuses_mut(m).for_each(|s| s.msg_ref = "97".into()))),
        c("wrong-session-id", From(0), |ctx| with(ctx, |m| m.hdr.session_id = "not-your-session".into())),
        c("statuses-for-unknown-commands", From(1), |ctx| {
            with(ctx, |m| {
                for s in statuses_mut(m) {
                    if s.cmd_ref != "0" {
                        s.cmd_ref = format!("9{}", s.cmd_ref);
                    }
                }
            })
        }),
        c("status-flood-100k", Init, |ctx| {
            with(ctx, |m| {
                for i in 0..100_000 {
                    m.body.push(Command::Status(Status {
                        msg_ref: "1".into(),
                        cmd_ref: (1000 + i).to_string(),
                        cmd: "Add".into(),
                        data: 200,
                        ..Status::default()
                    }));
                }
                renumber(m);
            })
        }),
        c("status-flood-13k", Init, |ctx| {
            // about our MaxMsgSize in WBXML (512 KB in the daemon): accepted, must stay cheap
            with(ctx, |m| {
                for i in 0..13_000 {
                    m.body.push(Command::Status(Status {
                        msg_ref: "1".into(),
                        cmd_ref: (1000 + i).to_string(),
                        cmd: "Add".into(),
                        data: 200,
                        ..Status::default()
                    }));
                }
                renumber(m);
            })
        }),
        c("synchdr-500", Init, |ctx| with(ctx, |m| hdr_status(m).data = 500)),
        c("synchdr-500-at-sync", Cmd("Sync"), |ctx| with(ctx, |m| hdr_status(m).data = 500)),
        c("synchdr-401-no-chal", Init, |ctx| with(ctx, |m| hdr_status(m).data = 401)),
        c("synchdr-401-chal-forever", From(0), |ctx| {
            with(ctx, |m| {
                let s = hdr_status(m);
                s.data = 401;
                s.chal = Some(Chal { meta: Meta { type_: Some(AUTH_MD5.into()), format: Some("b64".into()), next_nonce: Some("bm9uY2U=".into()), ..Meta::default() } });
                m.body.retain(|c| matches!(c, Command::Status(s) if s.cmd_ref == "0"));
                m.final_ = true;
            })
        }),
        c("synchdr-407-unsupported-auth", Init, |ctx| {
            with(ctx, |m| {
                let s = hdr_status(m);
                s.data = 407;
                s.chal = Some(Chal { meta: Meta { type_: Some("syncml:auth-x509".into()), ..Meta::default() } });
            })
        }),
        c("synchdr-status-0", Init, |ctx| with(ctx, |m| hdr_status(m).data = 0)),
        c("synchdr-status-65535", Init, |ctx| with(ctx, |m| hdr_status(m).data = 65535)),
        c("max-msg-size-0", Init, |ctx| with(ctx, |m| m.hdr.meta = Some(Meta { max_msg_size: Some(0), ..Meta::default() }))),
        c("max-msg-size-1", Init, |ctx| with(ctx, |m| m.hdr.meta = Some(Meta { max_msg_size: Some(1), ..Meta::default() }))),
        c("max-msg-size-u64-max", Init, |ctx| with(ctx, |m| m.hdr.meta = Some(Meta { max_msg_size: Some(u64::MAX), max_obj_size: Some(u64::MAX), ..Meta::default() }))),
        c("max-obj-size-0", Init, |ctx| with(ctx, |m| m.hdr.meta = Some(Meta { max_obj_size: Some(0), ..Meta::default() }))),
        c("endless-alert-222", From(1), |ctx| {
            with(ctx, |m| {
                m.body.retain(|c| matches!(c, Command::Status(_)));
                m.body.push(Command::Alert(Alert { data: Some(222), ..Alert::default() }));
                m.final_ = false;
                renumber(m);
            })
        }),
        c("endless-alert-222-from-start", From(0), |ctx| {
            with(ctx, |m| {
                m.body.retain(|c| matches!(c, Command::Status(_)));
                m.body.push(Command::Alert(Alert { data: Some(222), ..Alert::default() }));
                m.final_ = false;
                renumber(m);
            })
        }),
        c("never-final", From(0), |ctx| with(ctx, |m| m.final_ = false)),
        c("no-statuses-at-all", From(0), |ctx| with(ctx, |m| m.body.retain(|c| !matches!(c, Command::Status(_))))),
        c("alert-unknown-code-999", Init, |ctx| {
            with(ctx, |m| {
                for c in &mut m.body {
                    if let Command::Alert(a) = c {
                        a.data = Some(999);
                    }
                }
            })
        }),
        c("alert-for-unknown-store", Init, |ctx| {
            with(ctx, |m| {
                for c in &mut m.body {
                    if let Command::Alert(a) = c {
                        for i in &mut a.items {
                            i.target = Some(Location::new("./no-such-store"));
                            i.source = Some(Location::new("no-such-db"));
                        }
                    }
                }
            })
        }),
        c("no-alert-for-store", Init, |ctx| with(ctx, |m| m.body.retain(|c| !matches!(c, Command::Alert(_))))),
        c("alert-refused-508-no-alert", Init, |ctx| {
            with(ctx, |m| {
                m.body.retain(|c| !matches!(c, Command::Alert(_)));
                for s in statuses_mut(m) {
                    if s.cmd == "Alert" {
                        s.data = 508;
                    }
                }
            })
        }),
        c("alert-status-500", Init, |ctx| {
            with(ctx, |m| {
                for s in statuses_mut(m) {
                    if s.cmd == "Alert" {
                        s.data = 500;
                    }
                }
            })
        }),
        c("sync-status-500", Cmd("Sync"), |ctx| {
            with(ctx, |m| {
                for s in statuses_mut(m) {
                    if s.cmd == "Sync" {
                        s.data = 500;
                    }
                }
            })
        }),
        c("item-statuses-absurd", FromCmd("Sync"), |ctx| {
            with(ctx, |m| {
                for s in statuses_mut(m) {
                    if matches!(s.cmd.as_str(), "Add" | "Replace" | "Delete") {
                        s.data = 65535;
                    }
                }
            })
        }),
        c("item-statuses-missing", FromCmd("Sync"), |ctx| {
            with(ctx, |m| m.body.retain(|c| !matches!(c, Command::Status(s) if matches!(s.cmd.as_str(), "Add" | "Replace" | "Delete"))))
        }),
        c("duplicate-statuses", FromCmd("Sync"), |ctx| {
            with(ctx, |m| {
                let dup: Vec<Command> = m.body.iter().filter(|c| matches!(c, Command::Status(_))).cloned().collect();
                m.body.extend(dup);
                renumber(m);
            })
        }),
        c("server-sync-unknown-store-1000-adds", Cmd("Sync"), |ctx| {
            with(ctx, |m| {
                let commands = (0..1000)
                    .map(|i| {
                        Command::Add(ItemCmd {
                            items: vec![Item {
                                source: Some(Location::new(format!("x{i}"))),
                                data: Some(ItemData::Bytes(b"BEGIN:VCARD\r\nEND:VCARD\r\n".to_vec())),
                                ..Item::default()
                            }],
                            ..ItemCmd::default()
                        })
                    })
                    .collect();
                m.body.push(Command::Sync(Sync {
                    target: Some(Location::new("./nonexistent")),
                    source: Some(Location::new("nonexistent")),
                    commands,
                    ..Sync::default()
                }));
                m.final_ = true;
                renumber(m);
            })
        }),
        c("server-item-10mb", Cmd("Sync"), |ctx| {
            with(ctx, |m| {
                let target = ctx.client.body.iter().find_map(|c| if let Command::Sync(s) = c { s.source.clone() } else { None });
                m.body.push(Command::Sync(Sync {
                    target,
                    commands: vec![Command::Add(ItemCmd {
                        items: vec![Item {
                            source: Some(Location::new("big")),
                            data: Some(ItemData::Bytes(vec![b'A'; 10 * 1024 * 1024])),
                            ..Item::default()
                        }],
                        ..ItemCmd::default()
                    })],
                    ..Sync::default()
                }));
                m.final_ = true;
                renumber(m);
            })
        }),
        c("server-chunk-moredata-forever", FromCmd("Sync"), |ctx| {
            with(ctx, |m| {
                let target = ctx.client.body.iter().find_map(|c| if let Command::Sync(s) = c { s.source.clone() } else { None });
                m.body.push(Command::Sync(Sync {
                    target,
                    commands: vec![Command::Add(ItemCmd {
                        meta: Some(Meta { size: Some(u64::MAX), ..Meta::default() }),
                        items: vec![Item {
                            source: Some(Location::new("endless")),
                            data: Some(ItemData::Bytes(vec![b'B'; 60_000])),
                            more_data: true,
                            ..Item::default()
                        }],
                        ..ItemCmd::default()
                    })],
                    ..Sync::default()
                }));
                m.final_ = false;
                renumber(m);
            })
        }),
        c("respuri-closed-port", Init, |ctx| with(ctx, |m| m.hdr.resp_uri = Some("http://127.0.0.1:1/closed".into()))),
        c("respuri-garbage", Init, |ctx| with(ctx, |m| m.hdr.resp_uri = Some("::::not a url \u{0}".into()))),
        c("respuri-1mb", Init, |ctx| with(ctx, |m| m.hdr.resp_uri = Some(format!("http://127.0.0.1:1/{}", "x".repeat(1024 * 1024))))),
        c("respuri-other-scheme", Init, |ctx| with(ctx, |m| m.hdr.resp_uri = Some("file:///etc/passwd".into()))),
        c("devinf-10000-datastores", Init, |ctx| {
            with(ctx, |m| {
                let mut d = syncml::devinf::DevInf { ver_dtd: "1.2".into(), dev_id: "evil".into(), dev_typ: "server".into(), ..Default::default() };
                for i in 0..10_000 {
                    d.data_stores.push(syncml::devinf::DataStore { source_ref: format!("./db{i}"), ..Default::default() });
                }
                m.body.push(Command::Results(Results {
                    cmd_ref: "2".into(),
                    msg_ref: Some("1".into()),
                    meta: Some(Meta::with_type("application/vnd.syncml-devinf+xml")),
                    items: vec![Item { source: Some(Location::new("./devinf12")), data: Some(ItemData::DevInf(Box::new(d))), ..Item::default() }],
                    ..Results::default()
                }));
                m.body.push(Command::Status(Status { msg_ref: "1".into(), cmd_ref: "0".into(), cmd: "SyncHdr".into(), data: 500, ..Status::default() }));
                renumber(m);
            })
        }),
        c("huge-ids", Init, |ctx| {
            with(ctx, |m| {
                m.hdr.msg_id = "9".repeat(5000);
                for s in statuses_mut(m) {
                    s.cmd_id = "9".repeat(5000);
                    s.msg_ref = "18446744073709551616".into();
                }
            })
        }),
        c("empty-body-final", Init, |ctx| {
            with(ctx, |m| {
                m.body.clear();
                m.final_ = true;
            })
        }),
        c("put-10mb-message", Init, |ctx| {
            with(ctx, |m| {
                m.body.push(Command::Put(PutGet {
                    items: vec![Item { source: Some(Location::new("./junk")), data: Some(ItemData::Bytes(vec![b'Z'; 10 * 1024 * 1024])), ..Item::default() }],
                    ..PutGet::default()
                }));
                // and a SyncHdr failure so the message is bad as a whole
                hdr_status(m).data = 503;
                renumber(m);
            })
        }),
        c("unsupported-commands-only", From(0), |ctx| {
            with(ctx, |m| {
                m.body.retain(|c| matches!(c, Command::Status(s) if s.cmd_ref == "0"));
                for i in 0..50 {
                    m.body.push(Command::Other(OtherCmd { name: "Exec".into(), cmd_id: i.to_string(), no_resp: false }));
                }
                m.final_ = false;
            })
        }),
    ]
}
