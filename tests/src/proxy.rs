//! A tiny HTTP/1.1 forwarding proxy on 127.0.0.1 for protocol tests: one request per
//! connection (`Connection: close`), optionally refusing the first WBXML POST with 415 (to test
//! the client's XML fallback). Also the request forwarding used by [`crate::tls`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One HTTP request as read from a client.
pub struct Request {
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Read one request (head + Content-Length body).
pub fn read_request(s: &mut impl Read) -> io::Result<Request> {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the request head"));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut req = Request { head, body: Vec::new() };
    let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    req.body = vec![0; len];
    r.read_exact(&mut req.body)?;
    Ok(req)
}

/// Forward `req` to `backend` (host:port) with `Connection: close`; the raw response.
pub fn forward(req: &Request, backend: &str) -> io::Result<Vec<u8>> {
    let mut b = TcpStream::connect(backend)?;
    b.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut head = String::new();
    for (i, l) in req.head.lines().enumerate() {
        let lower = l.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("host:")) {
            continue;
        }
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Host: {backend}\r\nConnection: close\r\n\r\n"));
    b.write_all(head.as_bytes())?;
    b.write_all(&req.body)?;
    let mut resp = Vec::new();
    b.read_to_end(&mut resp)?;
    Ok(resp)
}

/// A plain HTTP proxy in front of `backend`.
pub struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Requests answered with 415 so far.
    pub refused: Arc<AtomicU32>,
    /// Requests forwarded so far.
    pub forwarded: Arc<AtomicU32>,
}

impl Proxy {
    /// `refuse_wbxml`: answer WBXML POSTs with 415 (all of them: a server without WBXML).
    pub fn start(backend: &str, refuse_wbxml: bool) -> io::Result<Proxy> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU32::new(0));
        let forwarded = Arc::new(AtomicU32::new(0));
        let (st, rf, fw, backend) = (stop.clone(), refused.clone(), forwarded.clone(), backend.to_string());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = c else { continue };
                let (rf, fw, backend) = (rf.clone(), fw.clone(), backend.clone());
                std::thread::spawn(move || {
                    let Ok(req) = read_request(&mut c) else { return };
                    let wbxml = req.header("content-type").is_some_and(|t| t.contains("wbxml"));
                    if refuse_wbxml && wbxml {
                        rf.fetch_add(1, Ordering::SeqCst);
                        let _ = c.write_all(b"HTTP/1.1 415 Unsupported Media Type\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nUnsupported Media Type");
                        return;
                    }
                    fw.fetch_add(1, Ordering::SeqCst);
                    match forward(&req, &backend) {
                        Ok(resp) => {
                            let _ = c.write_all(&resp);
                        }
                        Err(e) => {
                            let msg = format!("proxy: {e}");
                            let _ = write!(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
                        }
                    }
                });
            }
        });
        Ok(Proxy { port, stop, refused, forwarded })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
