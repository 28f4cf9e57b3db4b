//! A fake 3GPP AT modem for the real ModemManager: listens on a Linux abstract unix
//! socket, which ModemManager opens as the AT port of a virtual device
//! (`Test.SetProfile(id, "generic", ["abstract:<name>"])`), answers the commands the
//! generic plugin sends while probing, initializing and enabling, and keeps an SMS store
//! ("ME" and "SM") in PDU mode: `+CPMS`, `+CMGF`, `+CNMI`, `+CMGL`, `+CMGR`, `+CMGW`
//! (restores), `+CMGD`, `+CMGS`, `+CMSS`. New messages are announced with `+CMTI`, one at a
//! time: ModemManager 1.20 drops a `+CMTI` that arrives while it still reads the previous
//! part.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::pdu::{self, Body, Scts};
use crate::Result;

pub const ICCID: &str = "89001012012341234012";
pub const SMSC: &str = "+15550000000";
const CAPACITY: u32 = 255;

/// `+CMGL` / `+CMGW` status: 0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT.
pub type Stat = u8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Storage {
    Me,
    Sm,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::Me => "ME",
            Storage::Sm => "SM",
        }
    }

    fn parse(s: &str) -> Option<Storage> {
        match s.trim().trim_matches('"').to_ascii_uppercase().as_str() {
            "ME" => Some(Storage::Me),
            "SM" => Some(Storage::Sm),
            _ => None,
        }
    }

    /// ModemManager's `MMSmsStorage` value.
    pub fn mm_value(self) -> u32 {
        match self {
            Storage::Sm => 1,
            Storage::Me => 2,
        }
    }
}

/// What an initial message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Received (SMS-DELIVER).
    Deliver,
    /// Outgoing (SMS-SUBMIT): sent (stat 3) or draft (stat 2).
    Submit,
}

/// One initial message of the fake modem, with what ModemManager shows for it.
#[derive(Debug, Clone)]
pub struct TestMessage {
    pub storage: Storage,
    pub stat: Stat,
    pub kind: Kind,
    pub number: String,
    pub body: Body,
    /// SMSC timestamp (deliver only).
    pub timestamp: Option<Scts>,
    pub pdus: Vec<String>,
}

impl TestMessage {
    /// `Sms.State` as ModemManager 1.20 shows it.
    pub fn mm_state(&self) -> u32 {
        match self.stat {
            0 | 1 => 3,
            2 => 1,
            _ => 5,
        }
    }

    pub fn mm_pdu_type(&self) -> u32 {
        match self.kind {
            Kind::Deliver => 1,
            Kind::Submit => 2,
        }
    }

    /// `Sms.Timestamp` as ModemManager prints it.
    pub fn mm_timestamp(&self) -> String {
        self.timestamp.map(|t| t.glib_iso8601()).unwrap_or_default()
    }

    pub fn text(&self) -> &str {
        match &self.body {
            Body::Text(t) => t,
            Body::Data(_) => "",
        }
    }
}

pub const LONG_TEXT: &str = "This is a long concatenated message from the fake modem. It needs more than one hundred and sixty GSM characters, so the sender split it into two parts that ModemManager joins again. The End.";

/// The nine kinds of test message; from the 10th on they repeat with " (#n)" appended.
/// (storage, stat, kind, number, body, UTC offset in minutes of the SMSC timestamp)
type Template = (Storage, Stat, Kind, &'static str, Body, Option<i16>);

fn templates() -> Vec<Template> {
    let t = |s: &str| Body::Text(s.to_string());
    vec![
        (
            Storage::Me,
            1,
            Kind::Deliver,
            "+15551230001",
            t("Hello from the fake modem!"),
            Some(120),
        ),
        (
            Storage::Me,
            1,
            Kind::Deliver,
            "+8613800138000",
            t("你好，世界！这是一条中文短信。"),
            Some(480),
        ),
        (
            Storage::Me,
            0,
            Kind::Deliver,
            "+15551230002",
            t(LONG_TEXT),
            Some(-300),
        ),
        (
            Storage::Sm,
            1,
            Kind::Deliver,
            "+4917012345678",
            t("Grüße aus Köln: 5€ {ok} [x] ~ ^ | \\ @ _"),
            Some(60),
        ),
        (
            Storage::Me,
            3,
            Kind::Submit,
            "+15551230003",
            t("A message I sent earlier."),
            None,
        ),
        (
            Storage::Me,
            0,
            Kind::Deliver,
            "+15551230004",
            t("Emoji test 😀👍 and é"),
            Some(0),
        ),
        (
            Storage::Me,
            2,
            Kind::Submit,
            "+15551230005",
            t("Draft that was never sent"),
            None,
        ),
        (
            Storage::Me,
            1,
            Kind::Deliver,
            "Vendor",
            t("Your code is 123456"),
            Some(330),
        ),
        (
            Storage::Me,
            1,
            Kind::Deliver,
            "+15551230009",
            Body::Data(b"\x00\x01\x02\xfe\xffbinary".to_vec()),
            Some(-210),
        ),
    ]
}

/// The first `n` test messages (2024-01-01 08:00:00 local + i h + i min + i s).
pub fn initial_messages(n: usize) -> Vec<TestMessage> {
    let tpl = templates();
    (0..n)
        .map(|i| {
            let (storage, stat, kind, number, mut body, offset) = tpl[i % tpl.len()].clone();
            if i >= tpl.len() {
                let suffix = format!(" (#{})", i + 1);
                match &mut body {
                    Body::Text(t) => t.push_str(&suffix),
                    Body::Data(d) => d.extend_from_slice(suffix.as_bytes()),
                }
            }
            let minutes = 8 * 60 + i as u64 * 61;
            let when = Scts {
                year: 2024,
                month: 1,
                day: 1 + (minutes / 1440) as u8,
                hour: (minutes / 60 % 24) as u8,
                minute: (minutes % 60) as u8,
                second: (i % 60) as u8,
                offset_minutes: offset.unwrap_or(0),
            };
            let reference = (0x41 + i) as u8;
            let (pdus, timestamp) = match kind {
                Kind::Deliver => (
                    pdu::deliver_pdus(number, &body, &when, reference, SMSC),
                    Some(when),
                ),
                Kind::Submit => (pdu::submit_pdus(number, &body, reference), None),
            };
            TestMessage {
                storage,
                stat,
                kind,
                number: number.to_string(),
                body,
                timestamp,
                pdus,
            }
        })
        .collect()
}

/// One stored PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub storage: Storage,
    pub index: u32,
    pub stat: Stat,
    pub pdu: String,
}

struct State {
    store: BTreeMap<Storage, BTreeMap<u32, (Stat, String)>>,
    mem: [Storage; 3],
    cmgf: u8,
    cscs: String,
    cfun: u8,
    next_ref: u8,
    msg_ref: u8,
    clients: Vec<(u64, UnixStream)>,
    urc_queue: VecDeque<(Storage, u32)>,
    inflight: Option<(Storage, u32, Instant)>,
    not_before: Instant,
    fetched: HashSet<(Storage, u32)>,
    log: Option<File>,
    /// every PDU written with AT+CMGW (restores)
    written: Vec<String>,
    /// `+CMGL` lists newest index first (flipped for every new AT client, so that each
    /// ModemManager start numbers its `SMS/N` objects differently, as happens on real
    /// hardware when messages come and go)
    list_reversed: bool,
    connections: u64,
}

impl State {
    fn log(&mut self, msg: &str) {
        if let Some(f) = self.log.as_mut() {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let _ = writeln!(f, "{t:.3} {msg}");
        }
    }

    fn add(&mut self, storage: Storage, stat: Stat, pdu: String) -> Option<u32> {
        let st = self.store.entry(storage).or_default();
        let idx = (0..CAPACITY).find(|i| !st.contains_key(i))?;
        st.insert(idx, (stat, pdu));
        self.fetched.remove(&(storage, idx));
        Some(idx)
    }

    fn count(&self, s: Storage) -> usize {
        self.store.get(&s).map_or(0, BTreeMap::len)
    }

    fn tpdu_len(pdu: &str) -> usize {
        let smsc_len = usize::from_str_radix(pdu.get(0..2).unwrap_or("00"), 16).unwrap_or(0);
        (pdu.len() / 2).saturating_sub(1 + smsc_len)
    }

    fn send_all(&mut self, data: &[u8]) {
        for (_, c) in self.clients.iter_mut() {
            let _ = c.write_all(data);
        }
    }

    /// Sends the next queued +CMTI once the previous part was read (or after 3 s).
    fn pump(&mut self) {
        let now = Instant::now();
        if let Some((s, i, deadline)) = self.inflight {
            if !self.fetched.contains(&(s, i)) && now < deadline {
                return;
            }
            self.inflight = None;
            self.not_before = now + Duration::from_millis(300);
        }
        if self.urc_queue.is_empty() || self.clients.is_empty() || now < self.not_before {
            return;
        }
        let Some((s, i)) = self.urc_queue.pop_front() else {
            return;
        };
        self.inflight = Some((s, i, now + Duration::from_secs(3)));
        let urc = format!("\r\n+CMTI: \"{}\",{i}\r\n", s.name());
        self.log(&format!("URC -> {urc:?}"));
        self.send_all(urc.as_bytes());
    }
}

/// Response lines of one command; `Raw` lines go out as they are (CMGL/CMGR bodies).
enum Out {
    Line(String),
    Raw(String),
}

/// The modem: a listener thread, one thread per AT client and a URC pump.
pub struct FakeModem {
    at_name: String,
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeModem {
    /// Starts listening on the abstract socket `abstract:fake-at-modem-<token>` with the
    /// first `n_sms` test messages stored. `log`: AT traffic (both directions).
    pub fn start(token: &str, n_sms: usize, log: Option<&std::path::Path>) -> Result<FakeModem> {
        let at_name = format!("abstract:fake-at-modem-{token}");
        // ModemManager takes the whole name, "abstract:" included, as the abstract address
        let addr = SocketAddr::from_abstract_name(at_name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        let mut state = State {
            store: BTreeMap::new(),
            mem: [Storage::Me; 3],
            cmgf: 0,
            cscs: "IRA".into(),
            cfun: 1,
            next_ref: 0xA0,
            msg_ref: 0,
            clients: vec![],
            urc_queue: VecDeque::new(),
            inflight: None,
            not_before: Instant::now(),
            fetched: HashSet::new(),
            log: log.map(File::create).transpose()?,
            written: vec![],
            list_reversed: false,
            connections: 0,
        };
        for m in initial_messages(n_sms) {
            for p in &m.pdus {
                state
                    .add(m.storage, m.stat, p.clone())
                    .ok_or("fake modem storage full")?;
            }
        }
        state.log(&format!(
            "listening on {at_name:?}, {n_sms} initial messages"
        ));
        let shared = Arc::new((Mutex::new(state), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![];
        {
            let (shared, stop) = (shared.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("fake-modem-accept".into())
                    .spawn(move || {
                        let mut next_id = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            match listener.accept() {
                                Ok((conn, _)) => {
                                    next_id += 1;
                                    let id = next_id;
                                    let Ok(writer) = conn.try_clone() else {
                                        continue;
                                    };
                                    {
                                        let mut st = lock(&shared.0);
                                        st.clients.push((id, writer));
                                        st.connections += 1;
                                        st.list_reversed = st.connections.is_multiple_of(2);
                                        st.log(&format!("AT client {id} connected"));
                                    }
                                    let (shared, stop) = (shared.clone(), stop.clone());
                                    let _ = std::thread::Builder::new()
                                        .name(format!("fake-modem-client-{id}"))
                                        .spawn(move || client_loop(id, conn, shared, stop));
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    std::thread::sleep(Duration::from_millis(20))
                                }
                                Err(_) => std::thread::sleep(Duration::from_millis(100)),
                            }
                        }
                    })?,
            );
        }
        {
            let (shared, stop) = (shared.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("fake-modem-pump".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            lock(&shared.0).pump();
                            shared.1.notify_all();
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    })?,
            );
        }
        Ok(FakeModem {
            at_name,
            shared,
            stop,
            threads,
        })
    }

    /// The port name for `Test.SetProfile` (`abstract:…`).
    pub fn at_port(&self) -> &str {
        &self.at_name
    }

    /// Stores an incoming message (SMS-DELIVER, now, UTC) in the `+CNMI` storage and
    /// announces its parts with `+CMTI`; returns once ModemManager read every part with
    /// `+CMGR` (or after `timeout`, with an error).
    pub fn deliver(&self, number: &str, text: &str, timeout: Duration) -> Result<usize> {
        let (m, cv) = &*self.shared;
        let keys = {
            let mut st = lock(m);
            st.next_ref = st.next_ref.wrapping_add(1);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let pdus = pdu::deliver_pdus(
                number,
                &Body::Text(text.into()),
                &Scts::from_unix_utc(now),
                st.next_ref,
                SMSC,
            );
            let storage = st.mem[2];
            let mut keys = vec![];
            for p in pdus {
                let idx = st.add(storage, 0, p).ok_or("fake modem storage full")?;
                keys.push((storage, idx));
                st.urc_queue.push_back((storage, idx));
            }
            st.pump();
            keys
        };
        let deadline = Instant::now() + timeout;
        let mut st = lock(m);
        while !keys.iter().all(|k| st.fetched.contains(k)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "ModemManager did not read the delivered message within {timeout:?}"
                )
                .into());
            }
            st = cv
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Ok(keys.len())
    }

    /// Everything in storage, in (storage, index) order.
    pub fn stored(&self) -> Vec<Stored> {
        let st = lock(&self.shared.0);
        st.store
            .iter()
            .flat_map(|(s, m)| {
                m.iter().map(|(i, (stat, pdu))| Stored {
                    storage: *s,
                    index: *i,
                    stat: *stat,
                    pdu: pdu.clone(),
                })
            })
            .collect()
    }

    /// Every PDU ModemManager wrote with `AT+CMGW`.
    pub fn written(&self) -> Vec<String> {
        lock(&self.shared.0).written.clone()
    }

    /// Empties both storages (ModemManager does not notice until it lists again).
    pub fn clear(&self) {
        let mut st = lock(&self.shared.0);
        st.store.clear();
        st.fetched.clear();
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        {
            let mut st = lock(&self.shared.0);
            for (_, c) in st.clients.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for FakeModem {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client_loop(
    id: u64,
    mut conn: UnixStream,
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf: Vec<u8> = Vec::new();
    // Some(is_write) while a PDU is expected after the "> " prompt
    let mut pending: Option<(bool, Stat)> = None;
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let n = match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            if let Some((write, stat)) = pending {
                let Some(pos) = buf.iter().position(|&b| b == 0x1A || b == 0x1B) else {
                    break;
                };
                let term = buf[pos];
                let pdu: String = String::from_utf8_lossy(&buf[..pos])
                    .trim()
                    .to_ascii_uppercase();
                buf.drain(..=pos);
                pending = None;
                let mut st = lock(&shared.0);
                let resp = if term == 0x1B {
                    "\r\nOK\r\n".to_string()
                } else if pdu.is_empty()
                    || !pdu.len().is_multiple_of(2)
                    || !pdu.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    "\r\n+CMS ERROR: 304\r\n".to_string()
                } else if write {
                    let mem = st.mem[1];
                    match st.add(mem, stat, pdu.clone()) {
                        Some(idx) => {
                            st.written.push(pdu.clone());
                            st.log(&format!("stored PDU at {}/{idx}: {pdu}", mem.name()));
                            format!("\r\n+CMGW: {idx}\r\n\r\nOK\r\n")
                        }
                        None => "\r\n+CMS ERROR: 322\r\n".to_string(),
                    }
                } else {
                    st.msg_ref = st.msg_ref.wrapping_add(1);
                    st.log(&format!("sent PDU: {pdu}"));
                    format!("\r\n+CMGS: {}\r\n\r\nOK\r\n", st.msg_ref)
                };
                st.log(&format!("{id} <- PDU {pdu:?}\n{id} -> {resp:?}"));
                let _ = conn.write_all(resp.as_bytes());
                continue;
            }
            let Some(pos) = buf.iter().position(|&b| b == b'\r') else {
                if buf.len() > 4096 {
                    buf.clear();
                }
                break;
            };
            let line: String = String::from_utf8_lossy(&buf[..pos])
                .trim_matches('\n')
                .to_string();
            buf.drain(..=pos);
            if line.trim().is_empty() {
                continue;
            }
            let mut st = lock(&shared.0);
            let (resp, p) = handle_line(&mut st, &line);
            pending = p;
            st.log(&format!("{id} <- {line:?}\n{id} -> {resp:?}"));
            drop(st);
            let _ = conn.write_all(resp.as_bytes());
            shared.1.notify_all();
        }
    }
    let mut st = lock(&shared.0);
    st.clients.retain(|(c, _)| *c != id);
    st.log(&format!("AT client {id} disconnected"));
}

/// One command line → response, and whether a PDU follows (`+CMGW` / `+CMGS`).
fn handle_line(st: &mut State, line: &str) -> (String, Option<(bool, Stat)>) {
    let cmd = line.trim();
    if cmd.len() < 2 || !cmd[..2].eq_ignore_ascii_case("AT") {
        return ("\r\nERROR\r\n".into(), None);
    }
    let body = &cmd[2..];
    let upper = body.to_ascii_uppercase();
    if upper.starts_with("+CMGW=") || upper.starts_with("+CMGS=") {
        let write = upper.starts_with("+CMGW=");
        let stat = upper[6..]
            .split(',')
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2);
        return ("\r\n> ".into(), Some((write, stat)));
    }
    let mut out: Vec<Out> = vec![];
    for part in body.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let res = if part.starts_with(['+', '^', '$', '*', '#', '%']) {
            extended(st, part)
        } else {
            Some(basic(part))
        };
        match res {
            Some(lines) => out.extend(lines),
            None => return ("\r\nERROR\r\n".into(), None),
        }
    }
    let mut s = String::new();
    for o in out {
        match o {
            Out::Line(l) => {
                s.push_str("\r\n");
                s.push_str(&l);
                s.push_str("\r\n");
            }
            Out::Raw(r) => s.push_str(&r),
        }
    }
    s.push_str("\r\nOK\r\n");
    (s, None)
}

fn basic(part: &str) -> Vec<Out> {
    if part.to_ascii_uppercase().starts_with('I') {
        return [
            "Manufacturer: FakeModem Inc.",
            "Model: FM-1000",
            "Revision: FM1000_1.0.0",
            "IMEI: 350000000000009",
        ]
        .iter()
        .map(|l| Out::Line(l.to_string()))
        .collect();
    }
    vec![] // E0, V1, Z, &C1, Q0 … all accepted
}

fn lines(v: &[&str]) -> Option<Vec<Out>> {
    Some(v.iter().map(|l| Out::Line(l.to_string())).collect())
}

fn swap_semi_octets(digits: &str) -> String {
    let mut d: Vec<char> = digits.chars().collect();
    if d.len() % 2 == 1 {
        d.push('F');
    }
    d.chunks(2).flat_map(|c| [c[1], c[0]]).collect()
}

fn extended(st: &mut State, part: &str) -> Option<Vec<Out>> {
    let u = part.to_ascii_uppercase();
    let simple: &[(&str, &[&str])] = &[
        ("+GCAP", &["+GCAP: +CGSM,+DS,+ES"]),
        ("+CGMI", &["FakeModem Inc."]),
        ("+GMI", &["FakeModem Inc."]),
        ("+CGMM", &["FM-1000"]),
        ("+GMM", &["FM-1000"]),
        ("+CGMR", &["FM1000_1.0.0"]),
        ("+GMR", &["FM1000_1.0.0"]),
        ("+CGSN", &["350000000000009"]),
        ("+GSN", &["350000000000009"]),
        ("+CIMI", &["001010123456789"]),
        ("+CPIN?", &["+CPIN: READY"]),
        ("+CSQ", &["+CSQ: 20,99"]),
        ("+CSQ=?", &["+CSQ: (0-31,99),(0-7,99)"]),
        ("+WS46=?", &["+WS46: (12,22,28)"]),
        ("+WS46?", &["+WS46: 25"]),
        ("+CNMI=?", &["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"]),
        ("+CMGF=?", &["+CMGF: (0,1)"]),
        ("+CSMS?", &["+CSMS: 0,1,1,1"]),
        ("+CSMS=?", &["+CSMS: (0,1)"]),
        ("+CSCA?", &["+CSCA: \"+15550000000\",145"]),
        ("+CREG?", &["+CREG: 2,1,\"1A2B\",\"01C3D4E5\",7"]),
        ("+CGREG?", &["+CGREG: 2,1,\"1A2B\",\"01C3D4E5\",7"]),
        ("+CEREG?", &["+CEREG: 2,1,\"1A2B\",\"01C3D4E5\",7"]),
        ("+CREG=?", &["+CREG: (0-2)"]),
        ("+CGREG=?", &["+CGREG: (0-2)"]),
        ("+CEREG=?", &["+CEREG: (0-2)"]),
        ("+CLCK=?", &["+CLCK: (\"SC\",\"AO\",\"OI\",\"OX\",\"AI\",\"IR\",\"AB\",\"AG\",\"AC\",\"PS\",\"FD\")"]),
        (
            "+CGDCONT=?",
            &[
                "+CGDCONT: (1-8),\"IP\",,,(0-2),(0-3)",
                "+CGDCONT: (1-8),\"IPV6\",,,(0-2),(0-3)",
                "+CGDCONT: (1-8),\"IPV4V6\",,,(0-2),(0-3)",
            ],
        ),
        ("+CGDCONT?", &["+CGDCONT: 1,\"IPV4V6\",\"internet\",\"0.0.0.0\",0,0"]),
        ("+CGACT?", &["+CGACT: 1,0"]),
        ("+CGATT?", &["+CGATT: 1"]),
        ("+CFUN=?", &["+CFUN: (0,1,4),(0,1)"]),
        ("+CSCS=?", &["+CSCS: (\"IRA\",\"GSM\",\"UCS2\")"]),
        ("+CNUM", &["+CNUM: \"\",\"+15559990000\",145"]),
        ("+CCID", &["+CCID: 89001012012341234012"]),
        ("+ICCID", &["+ICCID: 89001012012341234012"]),
    ];
    if let Some((_, l)) = simple.iter().find(|(k, _)| *k == u) {
        return lines(l);
    }
    if ["+CUSD=?", "+CIND=?", "+CMER=?"].contains(&u.as_str()) {
        return None;
    }
    if let Some(rest) = u.strip_prefix("+CRSM=176,") {
        // READ BINARY of a few SIM files
        return match rest.split(',').next()?.trim() {
            "12258" => Some(vec![Out::Line(format!(
                "+CRSM: 144,0,\"{}\"",
                swap_semi_octets(ICCID)
            ))]),
            "28486" => {
                let mut name = b"Fake Telecom".to_vec();
                name.resize(16, 0xFF);
                let hex: String = name.iter().map(|b| format!("{b:02X}")).collect();
                Some(vec![Out::Line(format!("+CRSM: 144,0,\"00{hex}\""))])
            }
            "28589" => lines(&["+CRSM: 144,0,\"00000002\""]),
            _ => None,
        };
    }
    if u.starts_with("+CLCK=") {
        return lines(&["+CLCK: 0"]);
    }
    if u == "+CFUN?" {
        return Some(vec![Out::Line(format!("+CFUN: {}", st.cfun))]);
    }
    if let Some(v) = u.strip_prefix("+CFUN=") {
        st.cfun = v
            .split(',')
            .next()
            .and_then(|x| x.trim().parse().ok())
            .unwrap_or(1);
        return Some(vec![]);
    }
    if u == "+CSCS?" {
        return Some(vec![Out::Line(format!("+CSCS: \"{}\"", st.cscs))]);
    }
    if u.starts_with("+CSCS=") {
        st.cscs = part[6..].trim_matches('"').to_string();
        return Some(vec![]);
    }
    if u == "+COPS?" {
        return lines(&["+COPS: 0,2,\"00101\",7"]);
    }
    if u == "+COPS=?" {
        return lines(&["+COPS: (2,\"Fake Telecom\",\"FakeTel\",\"00101\",7),,(0-4),(0-2)"]);
    }
    if [
        "+COPS=", "+CREG=", "+CGREG=", "+CEREG=", "+CMEE=", "+CNMI=", "+CSCA=", "+CSMS=", "+CMER=",
        "+CGEREP=", "+CTZR=", "+CSDH=",
    ]
    .iter()
    .any(|p| u.starts_with(p))
    {
        return Some(vec![]);
    }
    if let Some(v) = u.strip_prefix("+CMGF=") {
        st.cmgf = match v.trim() {
            "0" => 0,
            "1" => 1,
            _ => return None,
        };
        return Some(vec![]);
    }
    if u == "+CMGF?" {
        return Some(vec![Out::Line(format!("+CMGF: {}", st.cmgf))]);
    }
    if u == "+CPMS=?" {
        return lines(&["+CPMS: (\"ME\",\"SM\"),(\"ME\",\"SM\"),(\"ME\",\"SM\")"]);
    }
    if u == "+CPMS?" {
        let parts: Vec<String> = st
            .mem
            .iter()
            .map(|m| format!("\"{}\",{},{CAPACITY}", m.name(), st.count(*m)))
            .collect();
        return Some(vec![Out::Line(format!("+CPMS: {}", parts.join(",")))]);
    }
    if let Some(args) = u.strip_prefix("+CPMS=") {
        let mems: Vec<Storage> = args.split(',').map(Storage::parse).collect::<Option<_>>()?;
        if mems.is_empty() || mems.len() > 3 {
            return None;
        }
        for (i, m) in mems.into_iter().enumerate() {
            st.mem[i] = m;
        }
        let counts: Vec<String> = st
            .mem
            .iter()
            .map(|m| format!("{},{CAPACITY}", st.count(*m)))
            .collect();
        return Some(vec![Out::Line(format!("+CPMS: {}", counts.join(",")))]);
    }
    if let Some(arg) = u.strip_prefix("+CMGL") {
        if st.cmgf == 1 {
            return None; // text mode listing not implemented; ModemManager uses PDU mode
        }
        let arg = arg.trim_start_matches('=').trim_matches('"');
        let want: Option<u8> = match arg {
            "" | "4" | "ALL" => None,
            a => Some(a.parse().ok()?),
        };
        let mem = st.mem[0];
        let mut out = vec![];
        let reversed = st.list_reversed;
        if let Some(store) = st.store.get_mut(&mem) {
            let mut entries: Vec<_> = store.iter_mut().collect();
            if reversed {
                entries.reverse();
            }
            for (idx, (stat, pdu)) in entries {
                if want.is_some_and(|w| w != *stat) {
                    continue;
                }
                out.push(format!("+CMGL: {idx},{stat},,{}", State::tpdu_len(pdu)));
                out.push(pdu.clone());
                if *stat == 0 {
                    *stat = 1;
                }
            }
        }
        if out.is_empty() {
            return Some(vec![]);
        }
        // real modems put a single CRLF between the lines of a listing
        return Some(vec![Out::Raw(format!("\r\n{}\r\n", out.join("\r\n")))]);
    }
    if let Some(i) = u.strip_prefix("+CMGR=") {
        let idx: u32 = i.trim().parse().ok()?;
        let mem = st.mem[0];
        let (stat, pdu) = {
            let e = st.store.get_mut(&mem)?.get_mut(&idx)?;
            let r = (e.0, e.1.clone());
            if e.0 == 0 {
                e.0 = 1;
            }
            r
        };
        st.fetched.insert((mem, idx));
        return Some(vec![Out::Raw(format!(
            "\r\n+CMGR: {stat},,{}\r\n{pdu}\r\n",
            State::tpdu_len(&pdu)
        ))]);
    }
    if let Some(args) = u.strip_prefix("+CMGD=") {
        let mut a = args.split(',');
        let idx: u32 = a.next()?.trim().parse().ok()?;
        let flag: u8 = a
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map_or(Some(0), |s| s.parse().ok())?;
        let mem = st.mem[0];
        let store = st.store.entry(mem).or_default();
        if flag == 0 {
            store.remove(&idx);
        } else {
            store.clear();
        }
        return Some(vec![]);
    }
    if u.starts_with("+CMSS=") {
        st.msg_ref = st.msg_ref.wrapping_add(1);
        return Some(vec![Out::Line(format!("+CMSS: {}", st.msg_ref))]);
    }
    None
}
