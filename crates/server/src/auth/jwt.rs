//! Validation of JSON Web Tokens (RFC 7519) presented as bearer tokens.
//!
//! A token is accepted when its signature checks with a configured key:
//! HS256 with the shared secret, RS256 with an RSA public key, or ES256
//! with a P-256 public key. Its `aud` must contain the configured audience.
//! Its `exp` must lie in the future and its `nbf`, when present, in the
//! past, with [`LEEWAY_SECS`] of clock skew allowed. When an issuer is
//! configured, its `iss` must match. Tokens that name any other algorithm
//! are rejected.
//!
//! Claims read besides the registered ones: `account` (the account the
//! token acts as), `roles` (an array of role names) and `org`.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{AuthConfigError, AuthError};

/// Seconds of clock skew allowed when checking `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// Shortest HS256 secret accepted: 256 bits, the size of the hash.
const MIN_SECRET_LEN: usize = 32;

/// The claims of a valid token that roomd acts on.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Claims {
    /// The subject, logged as the credential's name.
    pub sub: Option<String>,
    pub account: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub org: Option<String>,
}

/// Keys and rules that tokens are checked against.
pub struct JwtValidator {
    keys: Vec<(Algorithm, DecodingKey)>,
    audience: String,
    issuer: Option<String>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<Algorithm> = self.keys.iter().map(|(alg, _)| *alg).collect();
        f.debug_struct("JwtValidator")
            .field("algorithms", &algorithms)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl JwtValidator {
    /// Loads the HS256 secret and the RS256 or ES256 public keys.
    pub fn load(
        secret_file: Option<&Path>,
        public_key_files: &[impl AsRef<Path>],
        audience: &str,
        issuer: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        let mut keys = Vec::new();
        if let Some(path) = secret_file {
            keys.push((Algorithm::HS256, load_secret(path)?));
        }
        for path in public_key_files {
            keys.push(load_public_key(path.as_ref())?);
        }
        Ok(JwtValidator {
            keys,
            audience: audience.to_owned(),
            issuer: issuer.map(str::to_owned),
        })
    }

    /// Checks `token` and returns its claims.
    pub fn validate(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        let mut last_error = AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg));
        for (algorithm, key) in self.keys.iter().filter(|(alg, _)| *alg == header.alg) {
            let validation = self.validation(*algorithm);
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => last_error = rejection(error.kind()),
            }
        }
        Err(last_error)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }
}

fn rejection(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::JwtRejected("it has expired"),
        ErrorKind::ImmatureSignature => AuthError::JwtRejected("it is not valid yet"),
        ErrorKind::InvalidAudience => AuthError::JwtRejected("its audience is not this service"),
        ErrorKind::InvalidIssuer => AuthError::JwtRejected("its issuer is not accepted"),
        ErrorKind::InvalidSignature => AuthError::JwtRejected("its signature is invalid"),
        ErrorKind::MissingRequiredClaim(_) => {
            AuthError::JwtRejected("it lacks a required claim (exp and aud are required)")
        }
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            AuthError::JwtRejected("a claim has the wrong type")
        }
        _ => AuthError::InvalidToken,
    }
}

fn load_secret(path: &Path) -> Result<DecodingKey, AuthConfigError> {
    let bytes = read(path, "--jwt-secret-file")?;
    let secret = bytes.trim_ascii_end();
    if secret.len() < MIN_SECRET_LEN {
        return Err(AuthConfigError::Invalid {
            flag: "--jwt-secret-file",
            path: path.display().to_string(),
            message: format!(
                "the secret has {} bytes; use at least {MIN_SECRET_LEN}",
                secret.len()
            ),
        });
    }
    Ok(DecodingKey::from_secret(secret))
}

/// Loads a PEM public key and picks its algorithm from the key type.
fn load_public_key(path: &Path) -> Result<(Algorithm, DecodingKey), AuthConfigError> {
    let pem = read(path, "--jwt-public-key-file")?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok((Algorithm::ES256, key));
    }
    Err(AuthConfigError::Invalid {
        flag: "--jwt-public-key-file",
        path: path.display().to_string(),
        message: "is not a PEM RSA or EC public key".into(),
    })
}

fn read(path: &Path, flag: &'static str) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|source| AuthConfigError::Read {
        flag,
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"an hs256 secret of at least 32 bytes";

    fn validator() -> JwtValidator {
        JwtValidator {
            keys: vec![(Algorithm::HS256, DecodingKey::from_secret(SECRET))],
            audience: "roomd".into(),
            issuer: Some("https://issuer.invalid".into()),
        }
    }

    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn jwt_valid_claims_are_returned() {
        let token = sign(json!({
            "sub": "portal", "aud": "roomd", "iss": "https://issuer.invalid",
            "exp": now() + 600, "account": "acc1", "roles": ["nurse"], "org": "clinic1",
        }));
        let claims = validator().validate(&token).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("portal"));
        assert_eq!(claims.account.as_deref(), Some("acc1"));
        assert_eq!(claims.roles, vec!["nurse".to_owned()]);
        assert_eq!(claims.org.as_deref(), Some("clinic1"));
    }

    #[test]
    fn jwt_rejections_say_why() {
        let valid = json!({"aud": "roomd", "iss": "https://issuer.invalid", "exp": now() + 600});
        let with = |key: &str, value: serde_json::Value| {
            let mut claims = valid.clone();
            claims[key] = value;
            claims
        };
        let mut no_exp = valid.clone();
        no_exp.as_object_mut().unwrap().remove("exp");

        let cases = [
            (sign(with("exp", json!(now() - 3600))), "expired"),
            (sign(with("aud", json!("other"))), "audience"),
            (sign(with("iss", json!("https://other.invalid"))), "issuer"),
            (sign(no_exp), "required claim"),
            (sign(with("roles", json!("nurse"))), "wrong type"),
            (sign(with("nbf", json!(now() + 3600))), "not valid yet"),
        ];
        for (token, expected) in cases {
            let error = validator().validate(&token).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }

        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &valid,
            &EncodingKey::from_secret(b"another secret of at least 32 bytes!"),
        )
        .unwrap();
        let error = validator().validate(&forged).unwrap_err();
        assert!(error.to_string().contains("signature"), "{error}");

        let other_algorithm = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &valid,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let error = validator().validate(&other_algorithm).unwrap_err();
        assert!(error.to_string().contains("HS384"), "{error}");

        assert!(matches!(
            validator().validate("not.a.jwt"),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn jwt_bad_key_files_fail_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "too-short-secret\n").unwrap();
        let error = JwtValidator::load(Some(&short), &[] as &[&Path], "roomd", None).unwrap_err();
        assert!(error.to_string().contains("at least 32"), "{error}");
        assert!(!error.to_string().contains("too-short-secret"), "{error}");

        let not_pem = dir.path().join("key.pem");
        std::fs::write(&not_pem, "not a key").unwrap();
        let error = JwtValidator::load(None, &[&not_pem], "roomd", None).unwrap_err();
        assert!(error.to_string().contains("PEM"), "{error}");

        let missing = dir.path().join("missing.pem");
        let error = JwtValidator::load(None, &[&missing], "roomd", None).unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }
}
