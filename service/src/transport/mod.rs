//! HTTP(S) transport for SyncML messages: one POST per message, bounded in time and size.
//! Blocking (ureq); the engine runs it on tokio's blocking pool.
//!
//! HTTPS uses rustls (ring) through our own ureq connector ([`tls`]): the system trust store
//! (`rustls-native-certs`: /etc/ssl/certs via openssl-probe) plus [`Limits::extra_roots`], or,
//! with [`Limits::pinned_sha256`], exactly the server certificate with that SHA-256 (then its CA,
//! name and dates are not checked). There is no accept-any mode and never a fallback to plain HTTP:
//! an `https://` URL fails with [`TransportError::CertExpired`], [`TransportError::CertWrongHost`],
//! [`TransportError::CertUnknownCa`], [`TransportError::CertPinMismatch`] or
//! [`TransportError::Tls`].
//!
//! Time bound per message: at most `connect_attempts` connection attempts of `connect_timeout`
//! each with 0.5 s, 1 s, ... pauses between them, then `request_timeout` for the whole exchange
//! (TLS handshake, sending, waiting, reading). With the defaults: 3 x 15 s + 1.5 s + 120 s
//! = 166.5 s at most, however the server behaves (a server that accepts and never answers, or
//! trickles bytes, hits `request_timeout`).

mod tls;

use std::time::Duration;

/// Limits of one exchange. A stuck server cannot hold a job longer than
/// `connect + request` per message, and a session has a bounded number of messages.
#[derive(Debug, Clone)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// Whole request: send the body, wait for and read the answer.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response: u64,
    /// Attempts for errors that happen before the request reached the server (connection refused,
    /// DNS); a request that may have reached the server is never repeated.
    pub connect_attempts: u32,
    /// With a pin, the server certificate's SHA-256 (of its DER) must be this; the certificate
    /// then need not chain to a trusted CA (self-signed servers). The account's
    /// `server_cert_sha256` feeds it.
    pub pinned_sha256: Option<[u8; 32]>,
    /// CA certificates (DER) trusted in addition to the system trust store.
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            // A SyncML answer bigger than our MaxMsgSize (512 KB by default, the session
            // refuses more than 1.25 times it) is refused anyway: reading 16 MB of it first
            // only cost memory (a hostile 10 MB answer took the daemon to 60 MB peak RSS).
            max_response: 4 * 1024 * 1024,
            connect_attempts: 3,
            pinned_sha256: None,
            extra_roots: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server's TLS certificate has expired (or is not yet valid)")]
    CertExpired,
    #[error("the server's TLS certificate is not valid for host {host}")]
    CertWrongHost { host: String },
    #[error("the server's TLS certificate is not signed by a trusted certificate authority")]
    CertUnknownCa,
    #[error("the server's TLS certificate (SHA-256 {actual}) does not match the pinned certificate")]
    CertPinMismatch { actual: String },
    #[error("the server's answer is larger than {0} bytes")]
    TooLarge(u64),
    #[error("bad URL '{0}'")]
    BadUrl(String),
    #[error("HTTP: {0}")]
    Http(String),
}

pub struct HttpTransport {
    agent: ureq::Agent,
    limits: Limits,
    /// Why TLS could not be set up (e.g. an unparsable extra root): every HTTPS post fails with it.
    tls_setup_error: Option<String>,
}

impl HttpTransport {
    pub fn new(limits: Limits) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(limits.connect_timeout))
            .timeout_global(Some(limits.request_timeout))
            .max_redirects(0)
            .user_agent(concat!("imsync/", env!("CARGO_PKG_VERSION")))
            .build();
        let (connector, tls_setup_error) = match tls::client_config(&limits) {
            Ok(c) => (tls::Connector::new(Some(c)), None),
            Err(e) => (tls::Connector::new(None), Some(e)),
        };
        let agent = ureq::Agent::with_parts(config, connector.chain_default(), ureq::unversioned::resolver::DefaultResolver::default());
        HttpTransport { agent, limits, tls_setup_error }
    }

    /// POST `body` to `url` and return the answer, whatever its HTTP status.
    pub fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Response, TransportError> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0))))
            .ok_or_else(|| TransportError::BadUrl(url.to_string()))?;
        if url.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://")) {
            if let Some(e) = &self.tls_setup_error {
                return Err(TransportError::Tls(e.clone()));
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.agent.post(url).header("Content-Type", content_type).send(body);
            match result {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let content_type =
                        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(self.limits.max_response)
                        .read_to_vec()
                        .map_err(|e| self.map_error(e, &host))?;
                    return Ok(Response { status, content_type, body });
                }
                Err(e) => {
                    let err = self.map_error(e, &host);
                    let before_request = matches!(err, TransportError::Connect { .. });
                    if before_request && attempt < self.limits.connect_attempts {
                        let pause = Duration::from_millis(500 * (1 << (attempt - 1)));
                        tracing::info!(%host, attempt, error = %err, ?pause, "connection failed; retrying");
                        std::thread::sleep(pause);
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    fn map_error(&self, e: ureq::Error, host: &str) -> TransportError {
        match e {
            ureq::Error::Timeout(_) => TransportError::Timeout(self.limits.request_timeout),
            ureq::Error::BodyExceedsLimit(n) => TransportError::TooLarge(n),
            ureq::Error::HostNotFound => {
                TransportError::Connect { host: host.to_string(), detail: "host name not found".into() }
            }
            ureq::Error::ConnectionFailed => {
                TransportError::Connect { host: host.to_string(), detail: "connection failed".into() }
            }
            ureq::Error::Io(io) if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::NetworkUnreachable
            ) => TransportError::Connect { host: host.to_string(), detail: io.to_string() },
            ureq::Error::Rustls(t) => tls::map_error(&t, host),
            ureq::Error::Io(io) if io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).is_some() => {
                let t = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).expect("checked");
                tls::map_error(t, host)
            }
            ureq::Error::BadUri(u) => TransportError::BadUrl(u),
            other => TransportError::Http(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn refused_connection_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = HttpTransport::new(Limits { connect_attempts: 1, ..Default::default() });
        let err = t.post(&format!("http://127.0.0.1:{port}/sync"), "application/vnd.syncml+xml", b"x").unwrap_err();
        assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    }

    #[test]
    fn posts_and_reads_any_status() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.ends_with(b"hello") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let t = HttpTransport::new(Limits::default());
        let r = t.post(&format!("http://127.0.0.1:{port}/x"), "application/vnd.syncml+xml", b"hello").unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(r.body, b"boom");
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        let req = server.join().unwrap();
        assert!(req.to_ascii_lowercase().contains("content-type: application/vnd.syncml+xml"), "{req}");
    }
}
