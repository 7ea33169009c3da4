//! TLS for the public and the internal port, with optional client
//! certificates.
//!
//! With `--tls-client-ca`, the server requests a certificate from every
//! client but does not require one, so a caller may authenticate with a bearer
//! token instead. The handshake checks that the client has the key of the
//! certificate it presents. [`ClientCertificates::verify`] checks on each
//! request that the CA issued that certificate, so a certificate from
//! another CA gets an `unauthenticated` fault rather than a failed
//! handshake.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tracing::debug;

use super::AuthConfigError;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// The server side of TLS: certificate, key and client certificate rules.
#[derive(Clone)]
pub struct TlsSettings {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings")
    }
}

impl TlsSettings {
    /// Loads the server certificate chain and key, and, when given, the CA
    /// bundle that client certificates are checked against.
    pub fn load(
        cert: &Path,
        key_path: &Path,
        client_certificates: Option<&ClientCertificates>,
    ) -> Result<Self, AuthConfigError> {
        let chain = load_certificates(cert, "--tls-cert")?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| match error {
            rustls::pki_types::pem::Error::Io(source) => AuthConfigError::Read {
                flag: "--tls-key",
                path: key_path.display().to_string(),
                source,
            },
            error => AuthConfigError::Invalid {
                flag: "--tls-key",
                path: key_path.display().to_string(),
                message: format!("is not a PEM private key: {error}"),
            },
        })?;

        let builder = ServerConfig::builder();
        let builder = match client_certificates {
            Some(client) => builder.with_client_cert_verifier(Arc::new(DeferredVerifier {
                inner: client.verifier.clone(),
            })),
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder
                .with_single_cert(chain, key)
                .map_err(|error| AuthConfigError::Invalid {
                    flag: "--tls-key",
                    path: key_path.display().to_string(),
                    message: format!(
                        "does not match the certificate in {}: {error}",
                        cert.display()
                    ),
                })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsSettings {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Wraps accepted connections in TLS. Each handshake runs in its own
    /// task, so a slow client delays no other client. A connection whose
    /// handshake fails or times out is dropped and logged at debug level.
    pub fn incoming(
        &self,
        mut connections: TcpIncoming,
    ) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
        let (sender, receiver) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            loop {
                let connection = tokio::select! {
                    () = sender.closed() => break,
                    connection = connections.next() => connection,
                };
                let stream = match connection {
                    Some(Ok(stream)) => stream,
                    Some(Err(error)) => {
                        debug!(error = %error, "accepting a connection failed");
                        continue;
                    }
                    None => break,
                };
                tokio::spawn(handshake(acceptor.clone(), stream, sender.clone()));
            }
        });
        ReceiverStream::new(receiver)
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    sender: mpsc::Sender<Result<TlsStream<TcpStream>, io::Error>>,
) {
    let peer = stream.peer_addr().ok();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let _ = sender.send(Ok(tls)).await;
        }
        Ok(Err(error)) => debug!(peer = ?peer, error = %error, "TLS handshake failed"),
        Err(_) => debug!(peer = ?peer, "TLS handshake timed out"),
    }
}

/// The CA bundle that client certificates must chain to.
#[derive(Clone)]
pub struct ClientCertificates {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for ClientCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCertificates")
    }
}

impl ClientCertificates {
    pub fn load(ca: &Path) -> Result<Self, AuthConfigError> {
        let invalid = |message: String| AuthConfigError::Invalid {
            flag: "--tls-client-ca",
            path: ca.display().to_string(),
            message,
        };
        let mut roots = RootCertStore::empty();
        for certificate in load_certificates(ca, "--tls-client-ca")? {
            roots.add(certificate).map_err(|error| {
                invalid(format!("contains an unusable CA certificate: {error}"))
            })?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        Ok(ClientCertificates { verifier })
    }

    /// Checks that `chain` (end entity first) was issued by the CA and is
    /// valid now.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}

/// Offers client authentication and checks the handshake signatures with
/// `inner`, but accepts any certificate chain, which the request handler
/// then checks with [`ClientCertificates::verify`].
#[derive(Debug)]
struct DeferredVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn load_certificates(
    path: &Path,
    flag: &'static str,
) -> Result<Vec<CertificateDer<'static>>, AuthConfigError> {
    let invalid = |message: String| AuthConfigError::Invalid {
        flag,
        path: path.display().to_string(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(format!("cannot be read: {error}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("is not a PEM certificate file: {error}")))?;
    if certificates.is_empty() {
        return Err(invalid("contains no PEM certificate".into()));
    }
    Ok(certificates)
}
