//! rustls for ureq: our own connector so that the certificate verifier is ours (system roots +
//! extra roots, or a SHA-256 pin), and certificate errors keep their kind.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme, StreamOwned};
use sha2::{Digest, Sha256};
use ureq::unversioned::transport::{
    Buffers, ChainedConnector, ConnectionDetails, Connector as UreqConnector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};

use super::{Limits, TransportError};

/// The pin did not match (carried inside `CertificateError::Other`).
#[derive(Debug)]
pub struct PinMismatch {
    pub actual: [u8; 32],
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate SHA-256 {} does not match the pin", hex(&self.actual))
    }
}

impl std::error::Error for PinMismatch {}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client configuration for `limits`.
pub fn client_config(limits: &Limits) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    for (i, der) in limits.extra_roots.iter().enumerate() {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| format!("extra root certificate {i}: {e}"))?;
    }
    if roots.is_empty() {
        tracing::warn!(errors = ?native.errors, "no trusted root certificates found (system store empty); only pinned servers will work");
    } else {
        tracing::debug!(system = added, extra = limits.extra_roots.len(), "TLS trust roots loaded");
    }
    // An empty store makes WebPkiServerVerifier fail to build: keep a verifier for signatures anyway.
    let webpki = if roots.is_empty() {
        None
    } else {
        Some(WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().map_err(|e| e.to_string())?)
    };
    let verifier = Arc::new(Verifier { webpki, pin: limits.pinned_sha256, provider: provider.clone() });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous() // our verifier is not "dangerous": it verifies (chain + name + dates) or pins
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = &self.pin {
            let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
            return if &actual == pin {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(PinMismatch { actual })))))
            };
        }
        match &self.webpki {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Map a rustls error to our named errors.
pub fn map_error(e: &rustls::Error, host: &str) -> TransportError {
    let bare_host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host).to_string();
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } | CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TransportError::CertExpired
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => TransportError::CertWrongHost { host: bare_host },
            CertificateError::UnknownIssuer => TransportError::CertUnknownCa,
            CertificateError::Other(OtherError(o)) => match o.downcast_ref::<PinMismatch>() {
                Some(p) => TransportError::CertPinMismatch { actual: hex(&p.actual) },
                None => TransportError::Tls(e.to_string()),
            },
            _ => TransportError::Tls(e.to_string()),
        },
        other => TransportError::Tls(other.to_string()),
    }
}

/// ureq connector: TCP, then (for https) rustls with our configuration.
#[derive(Debug)]
pub struct Connector {
    config: Option<Arc<ClientConfig>>,
}

impl Connector {
    pub fn new(config: Option<Arc<ClientConfig>>) -> Self {
        Connector { config }
    }

    /// TCP then TLS (no proxies: imsync talks to the server directly).
    pub fn chain_default(self) -> ChainedConnector<(), ChainedConnector<(), (), TcpConnector>, Connector> {
        ().chain(TcpConnector::default()).chain(self)
    }
}

impl<In: Transport> UreqConnector<In> for Connector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else { return Ok(None) };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let Some(config) = self.config.clone() else {
            return Err(ureq::Error::Tls("TLS is not configured"));
        };
        let host = details.uri.authority().map(|a| a.host().trim_start_matches('[').trim_end_matches(']').to_string()).unwrap_or_default();
        let name: ServerName<'static> = ServerName::try_from(host).map_err(|_| ureq::Error::Tls("invalid TLS server name"))?;
        let mut conn = ClientConnection::new(config, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
