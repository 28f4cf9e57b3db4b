//! Test PKI and a TLS front end: a test CA and server certificates made with rcgen (valid for
//! 127.0.0.1/localhost, expired, for another host name, from an unknown CA), and a
//! TLS-terminating proxy on 127.0.0.1 that forwards each request to a plain HTTP backend (the
//! SyncEvolution server) — or answers every request itself with a fixed reply.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::proxy::{forward, read_request};

/// A certificate authority.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate + key (DER).
#[derive(Clone)]
pub struct ServerCert {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl ServerCert {
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.cert_der).into()
    }
}

/// Which server certificate to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// For 127.0.0.1 and localhost, valid now.
    Valid,
    /// For 127.0.0.1 and localhost, expired in 2001.
    Expired,
    /// Valid now, but for `other.invalid` only.
    WrongHost,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).expect("self-signed CA");
        Ca { cert, key }
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    pub fn issue(&self, kind: CertKind) -> ServerCert {
        let key = KeyPair::generate().expect("key");
        let names = match kind {
            CertKind::WrongHost => vec!["other.invalid".to_string()],
            _ => vec!["localhost".to_string()],
        };
        let mut p = CertificateParams::new(names).expect("params");
        if kind != CertKind::WrongHost {
            p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        }
        p.distinguished_name.push(DnType::CommonName, "imsync test server");
        if kind == CertKind::Expired {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        ServerCert { cert_der: cert.der().to_vec(), key_der: key.serialize_der() }
    }
}

/// What the TLS front end does with a request.
#[derive(Clone)]
pub enum Backend {
    /// Forward to this `host:port` over plain HTTP.
    Forward(String),
    /// Answer every request with this raw HTTP response.
    Fixed(Vec<u8>),
}

/// A TLS-terminating front end on 127.0.0.1.
pub struct TlsFront {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl TlsFront {
    pub fn start(cert: &ServerCert, backend: Backend) -> io::Result<TlsFront> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
            )
            .map_err(io::Error::other)?;
        let config = Arc::new(config);
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = c else { continue };
                let (config, backend) = (config.clone(), backend.clone());
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(300)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    // A failed handshake (the client refused our certificate) ends here.
                    let Ok(req) = read_request(&mut tls) else { return };
                    let resp = match &backend {
                        Backend::Fixed(r) => r.clone(),
                        Backend::Forward(b) => forward(&req, b).unwrap_or_else(|e| {
                            let msg = format!("tls front: {e}");
                            format!("HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len()).into_bytes()
                        }),
                    };
                    let _ = tls.write_all(&resp);
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        Ok(TlsFront { port, stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT/path`
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
