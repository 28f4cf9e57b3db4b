//! HTTPS in `imsync::transport`: a test CA (rcgen) and a TLS front end on 127.0.0.1; every
//! certificate failure has its own error; pinning; a SyncML exchange with SyncEvolution over TLS.

use harness::tls::{Backend, Ca, CertKind, TlsFront};
use imsync::transport::{HttpTransport, Limits, TransportError};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.syncml+xml\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

fn post(limits: Limits, url: &str) -> Result<imsync::transport::Response, TransportError> {
    HttpTransport::new(Limits { connect_attempts: 1, ..limits }).post(url, "application/vnd.syncml+xml", b"<SyncML/>")
}

fn front(ca: &Ca, kind: CertKind) -> TlsFront {
    TlsFront::start(&ca.issue(kind), Backend::Fixed(OK.to_vec())).unwrap()
}

#[test]
fn valid_certificate_from_an_extra_root() {
    let ca = Ca::new("imsync test CA");
    let f = front(&ca, CertKind::Valid);
    let r = post(Limits { extra_roots: vec![ca.cert_der()], ..Limits::default() }, &f.url("/sync")).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn unknown_ca_is_refused_without_the_extra_root() {
    let ca = Ca::new("imsync test CA");
    let f = front(&ca, CertKind::Valid);
    // System trust store only.
    let e = post(Limits::default(), &f.url("/sync")).unwrap_err();
    assert!(matches!(e, TransportError::CertUnknownCa), "{e:?}");
    // A different CA trusted: still unknown.
    let other = Ca::new("other CA");
    let e = post(Limits { extra_roots: vec![other.cert_der()], ..Limits::default() }, &f.url("/sync")).unwrap_err();
    assert!(matches!(e, TransportError::CertUnknownCa), "{e:?}");
    assert!(e.to_string().contains("trusted"));
}

#[test]
fn expired_certificate() {
    let ca = Ca::new("imsync test CA");
    let f = front(&ca, CertKind::Expired);
    let e = post(Limits { extra_roots: vec![ca.cert_der()], ..Limits::default() }, &f.url("/sync")).unwrap_err();
    assert!(matches!(e, TransportError::CertExpired), "{e:?}");
}

#[test]
fn wrong_host_name() {
    let ca = Ca::new("imsync test CA");
    let f = front(&ca, CertKind::WrongHost);
    let e = post(Limits { extra_roots: vec![ca.cert_der()], ..Limits::default() }, &f.url("/sync")).unwrap_err();
    assert!(matches!(&e, TransportError::CertWrongHost { host } if host == "127.0.0.1"), "{e:?}");
}

#[test]
fn pinned_certificate_needs_no_trusted_ca_and_mismatch_fails() {
    let ca = Ca::new("untrusted CA");
    let cert = ca.issue(CertKind::WrongHost);
    let f = TlsFront::start(&cert, Backend::Fixed(OK.to_vec())).unwrap();
    let r = post(Limits { pinned_sha256: Some(cert.sha256()), ..Limits::default() }, &f.url("/sync")).unwrap();
    assert_eq!(r.status, 200);
    let mut wrong = cert.sha256();
    wrong[0] ^= 1;
    let e = post(Limits { pinned_sha256: Some(wrong), ..Limits::default() }, &f.url("/sync")).unwrap_err();
    assert!(matches!(&e, TransportError::CertPinMismatch { actual } if actual.len() == 64), "{e:?}");
}

#[test]
fn syncml_session_start_over_tls_to_syncevolution() {
    use syncml::session::*;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let srv = harness::SyncmlServer::start(&root, &root.join("server")).unwrap();
    let ca = Ca::new("imsync test CA");
    let f = TlsFront::start(&ca.issue(CertKind::Valid), Backend::Forward(format!("127.0.0.1:{}", srv.port()))).unwrap();
    let path = srv.url().splitn(4, '/').nth(3).unwrap().to_string();
    let cfg = SessionConfig {
        credentials: Some(Credentials { username: srv.username().into(), password: srv.password().into(), auth: AuthType::Md5, nonce: None }),
        devinf: syncml::DevInf { ver_dtd: "1.2".into(), dev_id: "imsync-tls".into(), dev_typ: "phone".into(), ..Default::default() },
        stores: vec![StoreConfig {
            local_uri: "./contacts".into(),
            remote_uri: "contacts".into(),
            mode: SyncMode::Slow,
            last_anchor: None,
            next_anchor: "1".into(),
            content_type: "text/vcard".into(),
            content_version: "3.0".into(),
        }],
        ..SessionConfig::new(f.url(&format!("/{path}")), "imsync-tls", "1")
    };
    let t = HttpTransport::new(Limits { extra_roots: vec![ca.cert_der()], ..Limits::default() });
    let mut s = ClientSession::new(cfg);
    let Event::Send { url, body, content_type } = s.poll() else { panic!() };
    assert!(url.starts_with("https://"));
    let r = t.post(&url, content_type, &body).unwrap();
    assert_eq!(r.status, 200);
    s.receive(r.status, r.content_type.as_deref(), &r.body);
    // The server answered over TLS with its package 2 (its RespURI is plain HTTP, the TLS
    // front end being transparent to it: the session refuses to follow it out of HTTPS).
    match s.poll() {
        Event::NeedChanges { .. } => {}
        Event::Failed(SessionError::Protocol(m)) => assert!(m.contains("leave HTTPS"), "{m}"),
        other => panic!("{other:?}"),
    }
}
