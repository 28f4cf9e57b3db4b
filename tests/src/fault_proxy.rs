//! A fault-injecting HTTP proxy between imsyncd and a SyncML server, on
//! 127.0.0.1. It decodes every SyncML request (XML or WBXML) to know the
//! session (SessionID) and the message number (MsgID), and applies one armed
//! [`Fault`] at a chosen message of the next session that reaches it:
//!
//! * [`FaultKind::CutBeforeForward`]: close the client's connection without
//!   forwarding (the server never sees the message);
//! * [`FaultKind::CutAfterServer`]: forward, read the server's whole answer
//!   (the server applied the message), then close without answering;
//! * [`FaultKind::Http500`]: answer 500 without forwarding;
//! * [`FaultKind::Delay`]: forward after a pause;
//! * [`FaultKind::KillBeforeForward`] / [`FaultKind::KillAfterServer`]: SIGKILL
//!   a process (the daemon) at that point, then close.
//!
//! Every request is logged ([`Seen`]) so tests can say where a session was cut.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncml::codec::Encoding;

use crate::proxy::{forward, read_request};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    CutBeforeForward,
    CutAfterServer,
    Http500,
    Delay(Duration),
    KillBeforeForward(u32),
    KillAfterServer(u32),
}

/// Which message of a session the fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The message with this MsgID (1-based).
    Msg(u32),
    /// The first message carrying this command (e.g. "Map", "Sync").
    Cmd(&'static str),
    /// The n-th (1-based) message carrying this command.
    NthCmd(&'static str, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub at: At,
    pub kind: FaultKind,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub session_id: String,
    pub msg_id: u32,
    pub commands: Vec<String>,
    pub bytes: usize,
    /// The fault applied to this request, if any.
    pub fault: Option<FaultKind>,
}

#[derive(Default)]
struct State {
    armed: Option<Fault>,
    /// Session the armed fault is bound to (the first one seen after arming).
    session: Option<String>,
    cmd_count: u32,
    seen: Vec<Seen>,
    fired: Vec<(Fault, Seen)>,
}

pub struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// A proxy in front of `backend` (host:port).
    ///
    /// The server's answers name the server in their RespURI (SyncEvolution
    /// builds it from its own URL): the proxy rewrites `backend` to itself in
    /// every answer, byte for byte (its port has as many digits as the
    /// backend's, so lengths, WBXML string tables and Content-Length hold).
    pub fn start(backend: &str) -> std::io::Result<FaultProxy> {
        let backend_port = backend.rsplit(':').next().unwrap_or("");
        let mut tries = 0;
        let (l, port) = loop {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let port = l.local_addr()?.port();
            tries += 1;
            if port.to_string().len() == backend_port.len() || tries > 200 {
                break (l, port);
            }
        };
        if port.to_string().len() != backend_port.len() {
            return Err(std::io::Error::other("no proxy port with as many digits as the backend's"));
        }
        let me = format!("127.0.0.1:{port}");
        let stop = Arc::new(AtomicBool::new(false));
        let state: Arc<Mutex<State>> = Arc::default();
        let (st, state2, backend, me) = (stop.clone(), state.clone(), backend.to_string(), me);
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (state, backend, me) = (state2.clone(), backend.clone(), me.clone());
                std::thread::spawn(move || serve(c, &state, &backend, &me));
            }
        });
        Ok(FaultProxy { port, stop, state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `server_url` with its host:port replaced by the proxy's.
    pub fn url_for(&self, server_url: &str) -> String {
        let rest = server_url.strip_prefix("http://").expect("http URL");
        let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Arm `fault` for the next session (replaces an armed one).
    pub fn arm(&self, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        s.armed = Some(fault);
        s.session = None;
        s.cmd_count = 0;
    }

    pub fn disarm(&self) {
        self.state.lock().unwrap().armed = None;
    }

    /// Faults applied so far, with the request each hit.
    pub fn fired(&self) -> Vec<(Fault, Seen)> {
        self.state.lock().unwrap().fired.clone()
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Whether the server received a message carrying a `Sync` in the session
    /// the fault `hit` (messages before it, and the hit one itself when the
    /// fault let it through to the server).
    pub fn server_got_sync_before(&self, hit: &Seen) -> bool {
        let through = matches!(hit.fault, Some(FaultKind::CutAfterServer | FaultKind::KillAfterServer(_) | FaultKind::Delay(_)));
        self.seen().iter().any(|s| {
            s.session_id == hit.session_id
                && (s.msg_id < hit.msg_id || (s.msg_id == hit.msg_id && through))
                && s.commands.iter().any(|c| c == "Sync")
        })
    }

    /// Messages per session, in order of appearance.
    pub fn sessions(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = vec![];
        for s in self.seen() {
            match out.iter_mut().find(|(id, _)| *id == s.session_id) {
                Some(e) => e.1 = e.1.max(s.msg_id),
                None => out.push((s.session_id.clone(), s.msg_id)),
            }
        }
        out
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn kill(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

fn replace_all(data: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    while i + from.len() <= data.len() {
        if &data[i..i + from.len()] == from {
            data[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
}

fn serve(mut c: TcpStream, state: &Mutex<State>, backend: &str, me: &str) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(req) = read_request(&mut c) else { return };
    let decoded = if req.head.starts_with("POST") { Encoding::sniff(&req.body).decode(&req.body).ok() } else { None };
    let fault = {
        let mut s = state.lock().unwrap();
        let mut fault = None;
        if let Some(m) = &decoded {
            let commands: Vec<String> = m.body.iter().map(|c| c.name().to_string()).collect();
            let msg_id: u32 = m.hdr.msg_id.trim().parse().unwrap_or(0);
            let mut seen = Seen { session_id: m.hdr.session_id.clone(), msg_id, commands, bytes: req.body.len(), fault: None };
            if let Some(f) = s.armed {
                if s.session.is_none() {
                    s.session = Some(seen.session_id.clone());
                }
                if s.session.as_deref() == Some(seen.session_id.as_str()) {
                    let hit = match f.at {
                        At::Msg(n) => msg_id == n,
                        At::Cmd(cmd) => seen.commands.iter().any(|c| c == cmd),
                        At::NthCmd(cmd, n) => {
                            if seen.commands.iter().any(|c| c == cmd) {
                                s.cmd_count += 1;
                            }
                            seen.commands.iter().any(|c| c == cmd) && s.cmd_count == n
                        }
                    };
                    if hit {
                        s.armed = None;
                        seen.fault = Some(f.kind);
                        s.fired.push((f, seen.clone()));
                        fault = Some(f.kind);
                    }
                }
            }
            s.seen.push(seen);
        }
        fault
    };
    match fault {
        None => {}
        Some(FaultKind::CutBeforeForward) => {
            let _ = c.shutdown(std::net::Shutdown::Both);
            return;
        }
        Some(FaultKind::KillBeforeForward(pid)) => {
            kill(pid);
            let _ = c.shutdown(std::net::Shutdown::Both);
            return;
        }
        Some(FaultKind::Http500) => {
            let _ = c.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: close\r\n\r\nfault injected");
            return;
        }
        Some(FaultKind::Delay(d)) => std::thread::sleep(d),
        Some(FaultKind::CutAfterServer) | Some(FaultKind::KillAfterServer(_)) => {
            // the server applies the message; its answer is lost
            let _ = forward(&req, backend);
            if let Some(FaultKind::KillAfterServer(pid)) = fault {
                kill(pid);
            }
            let _ = c.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
    match forward(&req, backend) {
        Ok(mut resp) => {
            replace_all(&mut resp, backend.as_bytes(), me.as_bytes());
            let _ = c.write_all(&resp);
        }
        Err(e) => {
            let msg = format!("fault proxy: {e}");
            let _ = write!(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
        }
    }
}
