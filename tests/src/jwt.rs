//! JSON Web Tokens for tests: keys made at test time ([`JwtKeys`]) and
//! [`claims`] to sign with them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

/// The audience that test servers are started with.
pub const TEST_AUDIENCE: &str = "roomd-test";

/// An HS256 secret, an RSA key pair and a P-256 key pair, with the files
/// that roomd reads: the secret and the two public keys.
pub struct JwtKeys {
    hs256_secret: String,
    rsa_private_pem: String,
    ec_private_pem: String,
    pub secret_file: PathBuf,
    pub rsa_public_file: PathBuf,
    pub ec_public_file: PathBuf,
}

impl JwtKeys {
    /// Generates the keys and writes the files roomd reads into `dir`.
    pub fn generate(dir: &Path) -> Self {
        let hs256_secret = format!("hs256-secret-{}", uuid::Uuid::now_v7().simple());
        let (rsa_private_pem, rsa_public_pem) = rsa_key_pair().clone();
        let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key");

        JwtKeys {
            secret_file: crate::tls::write_file(dir, "jwt-secret", &format!("{hs256_secret}\n")),
            rsa_public_file: crate::tls::write_file(dir, "jwt-rsa.pem", &rsa_public_pem),
            ec_public_file: crate::tls::write_file(dir, "jwt-ec.pem", &ec.public_key_pem()),
            hs256_secret,
            rsa_private_pem,
            ec_private_pem: ec.serialize_pem(),
        }
    }

    /// Returns the roomd flags that accept tokens signed with these keys
    /// for [`TEST_AUDIENCE`].
    pub fn roomd_args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--jwt-secret-file".into(),
            path(&self.secret_file),
            "--jwt-public-key-file".into(),
            path(&self.rsa_public_file),
            "--jwt-public-key-file".into(),
            path(&self.ec_public_file),
            "--jwt-audience".into(),
            TEST_AUDIENCE.into(),
        ]
    }

    /// Signs `claims` with `algorithm` (HS256, RS256 or ES256).
    ///
    /// # Panics
    /// For any other algorithm.
    pub fn sign(&self, algorithm: Algorithm, claims: &Value) -> String {
        let key = match algorithm {
            Algorithm::HS256 => EncodingKey::from_secret(self.hs256_secret.as_bytes()),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(self.rsa_private_pem.as_bytes())
                .expect("load the RSA private key"),
            Algorithm::ES256 => EncodingKey::from_ec_pem(self.ec_private_pem.as_bytes())
                .expect("load the P-256 private key"),
            other => panic!("no test key for {other:?}"),
        };
        jsonwebtoken::encode(&Header::new(algorithm), claims, &key).expect("sign the JWT")
    }
}

/// Returns claims for [`TEST_AUDIENCE`] that expire in 10 minutes, with the
/// extra claims of `extra` (an object) merged in.
pub fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "sub": "test-client",
        "aud": TEST_AUDIENCE,
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            claims.insert(key.clone(), value.clone());
        }
    }
    claims
}

/// Returns one RSA key pair (PKCS#8 private, SPKI public, both PEM) per test
/// process, since generating one takes a moment.
fn rsa_key_pair() -> &'static (String, String) {
    static PAIR: OnceLock<(String, String)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let private =
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate an RSA key");
        let private_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode the RSA private key")
            .to_string();
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encode the RSA public key");
        (private_pem, public_pem)
    })
}
