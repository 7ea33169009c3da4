//! Certificates made at test time: [`TestCa`] issues server and client
//! certificates for loopback addresses and writes them, with their keys, to
//! a temporary folder. No key is committed to the repository.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A certificate authority whose certificate and key live only in memory
/// and in its temporary folder.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    dir: TempDir,
}

/// A certificate and its private key, as PEM files in the CA's folder.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// Creates a CA named `name` (its common name).
    ///
    /// # Panics
    /// When key generation or signing fails.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("generate the CA key");
        let certificate = params
            .self_signed(&key)
            .expect("self-sign the CA certificate");
        let dir = tempfile::Builder::new()
            .prefix("roomd-tls-")
            .tempdir()
            .expect("create a folder for certificates");
        let ca = TestCa {
            issuer: Issuer::new(params, key),
            certificate_pem: certificate.pem(),
            dir,
        };
        std::fs::write(ca.ca_path(), &ca.certificate_pem).expect("write the CA certificate");
        ca
    }

    /// Returns the path of the CA certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Returns the CA certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Returns the folder that contains the CA's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a server certificate for `127.0.0.1` and `localhost`, saved
    /// as `<name>.pem` and `<name>-key.pem`.
    pub fn issue_server(&self, name: &str) -> CertFiles {
        self.issue(
            name,
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// Issues a client certificate with common name `name`.
    pub fn issue_client(&self, name: &str) -> CertFiles {
        self.issue(name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Returns client TLS settings that trust this CA, for `127.0.0.1`.
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.certificate_pem))
            .domain_name("127.0.0.1")
    }

    /// Like [`TestCa::client_tls`], presenting `client` as the client
    /// certificate.
    pub fn client_tls_with(&self, client: &CertFiles) -> ClientTlsConfig {
        let cert = std::fs::read(&client.cert).expect("read the client certificate");
        let key = std::fs::read(&client.key).expect("read the client key");
        self.client_tls().identity(Identity::from_pem(cert, key))
    }

    fn issue(
        &self,
        name: &str,
        subject_alt_names: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> CertFiles {
        let mut params = CertificateParams::new(subject_alt_names).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("generate a key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");

        let files = CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, certificate.pem()).expect("write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write the key");
        files
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Writes `content` to `name` in `dir` and returns the path, for token and
/// key files.
pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}
