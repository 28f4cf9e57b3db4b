//! A hostile SyncML server on 127.0.0.1 (no SyncEvolution): it plays the small
//! well-behaved peer of `syncml/tests/hostile/corpus.rs` and replaces some of
//! its answers by a case of the hostile corpus (the same corpus the sans-IO
//! session test uses). One request per connection; everything it does is
//! bounded (it stops writing after the case's limit, and on drop).

#[path = "../../syncml/tests/hostile/corpus.rs"]
#[allow(dead_code)]
pub mod corpus;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncml::codec::Encoding;

use crate::proxy::read_request;

/// What the server saw of one session.
#[derive(Debug, Default, Clone)]
pub struct SessionLog {
    /// Client messages received (decodable ones).
    pub messages: usize,
    /// (local URI, Last, Next, alert code) of every store Alert the client sent.
    pub alerts: Vec<(String, Option<String>, Option<String>, u16)>,
    /// Whether the hostile answer was served at least once.
    pub applied: bool,
}

struct State {
    case: Option<usize>,
    peer: corpus::Peer,
    n: usize,
    seen_cmd: bool,
    log: SessionLog,
}

pub struct HostileServer {
    port: u16,
    url: String,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    cases: Arc<Vec<corpus::Case>>,
}

impl HostileServer {
    pub fn start() -> std::io::Result<HostileServer> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}/sync");
        let stop = Arc::new(AtomicBool::new(false));
        let cases = Arc::new(corpus::corpus());
        let state = Arc::new(Mutex::new(State { case: None, peer: corpus::Peer::new(&url), n: 0, seen_cmd: false, log: SessionLog::default() }));
        let (st, state2, cases2) = (stop.clone(), state.clone(), cases.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (state, cases, st) = (state2.clone(), cases2.clone(), st.clone());
                std::thread::spawn(move || serve(c, &state, &cases, &st));
            }
        });
        Ok(HostileServer { port, url, stop, state, cases })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn cases(&self) -> &[corpus::Case] {
        &self.cases
    }

    /// Serve case `i` of [`corpus::corpus`] (None: behave) from the next
    /// session on; resets the peer and the session log.
    pub fn set_case(&self, i: Option<usize>) {
        let mut s = self.state.lock().unwrap();
        let url = self.url.clone();
        *s = State { case: i, peer: corpus::Peer::new(&url), n: 0, seen_cmd: false, log: SessionLog::default() };
    }

    pub fn log(&self) -> SessionLog {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn http(c: &mut TcpStream, status: u16, headers: &[(String, String)], content_type: Option<&str>, body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(body);
}

fn serve(mut c: TcpStream, state: &Mutex<State>, cases: &[corpus::Case], stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = c.set_write_timeout(Some(Duration::from_secs(30)));
    let Ok(req) = read_request(&mut c) else { return };
    if req.head.starts_with("GET") {
        http(&mut c, 200, &[], Some("text/plain"), b"hostile SyncML server");
        return;
    }
    let enc = Encoding::sniff(&req.body);
    let Ok(client) = enc.decode(&req.body) else {
        http(&mut c, 400, &[], Some("text/plain"), b"client message does not decode");
        return;
    };
    let action = {
        let mut s = state.lock().unwrap();
        let benign = s.peer.answer(&client);
        s.log.messages += 1;
        let alerts = s.peer.client_anchors.clone();
        s.log.alerts = alerts;
        let n = s.n;
        s.n += 1;
        let mut seen = s.seen_cmd;
        let hostile = s.case.map(|i| &cases[i]).filter(|case| case.applies(n, &client, &mut seen));
        s.seen_cmd = seen;
        let ctx = corpus::Ctx { client: &client, benign, enc };
        match hostile {
            Some(case) => {
                s.log.applied = true;
                (case.make)(&ctx)
            }
            None => ctx.ok(&ctx.benign),
        }
    };
    match action {
        corpus::Action::Reply { status, content_type, headers, body } => http(&mut c, status, &headers, content_type.as_deref(), &body),
        corpus::Action::Raw(bytes) => {
            let _ = c.write_all(&bytes);
        }
        corpus::Action::Close => {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        corpus::Action::EndlessChunked { limit } => {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.syncml+xml\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = vec![b'<'; 64 * 1024];
            let mut sent = 0u64;
            while sent < limit && !stop.load(Ordering::SeqCst) {
                if c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err() || c.write_all(&chunk).is_err() || c.write_all(b"\r\n").is_err() {
                    break;
                }
                sent += chunk.len() as u64;
            }
        }
    }
}
