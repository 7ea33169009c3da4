//! Authentication of callers and nodes, and the acting principal that a
//! request resolves to. Every gRPC service of both ports runs behind
//! [`AuthInterceptor`], which stores the resolved [`Caller`] in the
//! request's extensions for the handlers.
//!
//! Credentials on the public port:
//!
//! - a bearer token (`authorization: Bearer <token>`): one of the named
//!   service tokens ([`tokens`]), or a JWT ([`jwt`]);
//! - a client certificate issued by the `--tls-client-ca` bundle ([`tls`]).
//!
//! A service credential (service token, client certificate, JWT without an
//! `account` claim) acts as the calling service, or for the account that
//! `x-roomd-account` names. A JWT with an `account` claim acts as that
//! account with the roles of its `roles` claim, and a header that names
//! another account, other roles or another org than its claims is
//! rejected. A bearer token that is present but invalid is rejected even
//! when a valid client certificate comes with it.
//!
//! On the internal port, with `--node-token-file`, only the node token is
//! accepted, and the principal comes from the headers that the forwarding
//! node wrote after it authenticated the caller.
//!
//! Without any caller credential configured, the headers are trusted as
//! they come, and the server listens on loopback addresses only (see
//! [`crate::ServerConfig::check_public_address`]).

pub mod jwt;
pub mod tls;
pub mod tokens;

use std::sync::Arc;

use roomd_model::{Principal, RoomError, validate};
use rustls::pki_types::CertificateDer;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::{debug, info};

use self::jwt::{Claims, JwtValidator};
use self::tls::ClientCertificates;
use self::tokens::{Secret, ServiceTokens};
use crate::caller::{ACCOUNT_HEADER, Caller, DEFAULT_ORG, ORG_HEADER, ROLES_HEADER};
use crate::fault;

pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Reasons a request failed authentication. The messages never contain
/// the presented credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: present a bearer token or a client certificate")]
    MissingCredential,

    #[error("the authorization header must be \"Bearer <token>\"")]
    MalformedAuthorization,

    #[error("the bearer token is neither a known service token nor a valid JWT")]
    InvalidToken,

    #[error("the JWT algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),

    #[error("the JWT is rejected because {0}")]
    JwtRejected(&'static str),

    #[error("the client certificate is rejected: {0}")]
    ClientCertificate(String),

    #[error(
        "{header} {requested:?} conflicts with the JWT's {claim} claim {claimed:?}. A header may only repeat what the JWT claims, so leave it out or send the claimed value"
    )]
    ClaimConflict {
        header: &'static str,
        claim: &'static str,
        requested: String,
        claimed: String,
    },

    #[error("the internal port accepts only the node token")]
    NodeCredential,

    /// Malformed principal metadata, reported as a validation fault rather
    /// than as `unauthenticated`.
    #[error(transparent)]
    Metadata(#[from] RoomError),
}

/// A start-up error in the authentication or TLS settings. The messages
/// name the flag and the file, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("cannot read {flag} {path}: {source}")]
    Read {
        flag: &'static str,
        path: String,
        source: std::io::Error,
    },

    #[error("invalid --service-tokens-file {path}, line {line}: {message}")]
    TokenFile {
        path: String,
        line: usize,
        message: String,
    },

    #[error("invalid {flag} {path}: {message}")]
    Invalid {
        flag: &'static str,
        path: String,
        message: String,
    },

    #[error("{0}")]
    Usage(String),
}

/// The credential a request presented on the public port.
#[derive(Debug)]
enum Credential {
    /// A service token, a service JWT or a client certificate.
    Service,
    /// A JWT, which may fix the org and the account.
    Jwt(Claims),
}

/// The configured credentials, shared by both ports.
#[derive(Debug, Default)]
pub struct Authenticator {
    service_tokens: Option<ServiceTokens>,
    jwt: Option<JwtValidator>,
    client_certificates: Option<ClientCertificates>,
    node_token: Option<Secret>,
}

impl Authenticator {
    /// Builds an authenticator from the loaded credentials. With all of
    /// them `None`, it trusts every caller's headers.
    pub fn new(
        service_tokens: Option<ServiceTokens>,
        jwt: Option<JwtValidator>,
        client_certificates: Option<ClientCertificates>,
        node_token: Option<Secret>,
    ) -> Self {
        Authenticator {
            service_tokens,
            jwt,
            client_certificates,
            node_token,
        }
    }

    /// Tells whether callers of the public port must authenticate.
    pub fn authenticates_callers(&self) -> bool {
        self.service_tokens.is_some() || self.jwt.is_some() || self.client_certificates.is_some()
    }

    /// Tells whether the internal port requires the node token.
    pub fn authenticates_nodes(&self) -> bool {
        self.node_token.is_some()
    }

    /// Returns the token this node presents to other nodes.
    pub fn node_token(&self) -> Option<&Secret> {
        self.node_token.as_ref()
    }

    /// Resolves the caller of a request on the public port.
    pub fn public_caller(
        &self,
        metadata: &MetadataMap,
        peer_certificates: Option<&[CertificateDer<'static>]>,
    ) -> Result<Caller, AuthError> {
        if !self.authenticates_callers() {
            return Ok(Caller::from_metadata(metadata)?);
        }
        match self.credential(metadata, peer_certificates)? {
            Credential::Service => Ok(Caller::from_metadata(metadata)?),
            Credential::Jwt(claims) => caller_from_claims(metadata, claims),
        }
    }

    /// Resolves the caller of a request on the internal port, which only
    /// another node may send when the node token is configured.
    pub fn internal_caller(&self, metadata: &MetadataMap) -> Result<Caller, AuthError> {
        if let Some(node_token) = &self.node_token {
            let presented = bearer_token(metadata)?.ok_or(AuthError::NodeCredential)?;
            if !node_token.matches(presented.as_bytes()) {
                return Err(AuthError::NodeCredential);
            }
        }
        Ok(Caller::from_metadata(metadata)?)
    }

    fn credential(
        &self,
        metadata: &MetadataMap,
        peer_certificates: Option<&[CertificateDer<'static>]>,
    ) -> Result<Credential, AuthError> {
        // A credential that is presented must be valid, even when another
        // one is, so a certificate is checked before the bearer token.
        let certificates = peer_certificates.filter(|chain| !chain.is_empty());
        let certificate_accepted = match (&self.client_certificates, certificates) {
            (Some(accepted), Some(chain)) => {
                accepted
                    .verify(chain)
                    .map_err(AuthError::ClientCertificate)?;
                true
            }
            _ => false,
        };

        if let Some(token) = bearer_token(metadata)? {
            return self.bearer_credential(token);
        }
        if certificate_accepted {
            debug!("authenticated by client certificate");
            return Ok(Credential::Service);
        }
        Err(AuthError::MissingCredential)
    }

    fn bearer_credential(&self, token: &str) -> Result<Credential, AuthError> {
        if let Some(name) = self
            .service_tokens
            .as_ref()
            .and_then(|tokens| tokens.find(token.as_bytes()))
        {
            debug!(credential = name, "authenticated by service token");
            return Ok(Credential::Service);
        }

        let looks_like_jwt = token.split('.').count() == 3;
        match &self.jwt {
            Some(validator) if looks_like_jwt => {
                let claims = validator.validate(token)?;
                debug!(
                    subject = claims.sub.as_deref().unwrap_or(""),
                    "authenticated by JWT"
                );
                if claims.account.is_none() && claims.org.is_none() && claims.roles.is_empty() {
                    Ok(Credential::Service)
                } else {
                    Ok(Credential::Jwt(claims))
                }
            }
            _ => Err(AuthError::InvalidToken),
        }
    }
}

/// Resolves the caller of a request that carries a JWT with an `account`,
/// `roles` or `org` claim. The claims take precedence, so a header may only
/// repeat them.
fn caller_from_claims(metadata: &MetadataMap, claims: Claims) -> Result<Caller, AuthError> {
    let org = match (claims.org, header(metadata, ORG_HEADER)?) {
        (Some(claimed), Some(requested)) if claimed != requested => {
            return Err(AuthError::ClaimConflict {
                header: ORG_HEADER,
                claim: "org",
                requested: requested.to_owned(),
                claimed,
            });
        }
        (Some(claimed), _) => claimed,
        (None, requested) => requested.unwrap_or(DEFAULT_ORG).to_owned(),
    };
    validate::identifier(ORG_HEADER, &org)?;

    let Some(account) = claims.account else {
        if !claims.roles.is_empty() {
            return Err(AuthError::JwtRejected(
                "its roles claim needs an account claim",
            ));
        }
        let mut caller = Caller::from_metadata(metadata)?;
        caller.org = org;
        return Ok(caller);
    };

    if let Some(requested) = header(metadata, ACCOUNT_HEADER)?
        && requested != account
    {
        return Err(AuthError::ClaimConflict {
            header: ACCOUNT_HEADER,
            claim: "account",
            requested: requested.to_owned(),
            claimed: account,
        });
    }
    let claimed_roles = claims.roles.join(",");
    let roles = crate::caller::parse_roles(&claimed_roles)?;
    if let Some(requested_text) = header(metadata, ROLES_HEADER)? {
        let requested = crate::caller::parse_roles(requested_text)?;
        if requested.len() != roles.len() || requested.iter().any(|role| !roles.contains(role)) {
            return Err(AuthError::ClaimConflict {
                header: ROLES_HEADER,
                claim: "roles",
                requested: requested_text.to_owned(),
                claimed: claimed_roles,
            });
        }
    }

    let principal = if account == "anonymous" {
        Principal::Anonymous { roles }
    } else {
        validate::account("account claim", &account)?;
        Principal::Account { id: account, roles }
    };
    Ok(Caller { org, principal })
}

fn header<'a>(metadata: &'a MetadataMap, key: &str) -> Result<Option<&'a str>, AuthError> {
    match metadata.get(key) {
        None => Ok(None),
        Some(value) => value.to_str().map(|text| Some(text.trim())).map_err(|_| {
            AuthError::Metadata(RoomError::validation(key, "must be printable ASCII"))
        }),
    }
}

/// Returns the token of an `authorization: Bearer <token>` header.
fn bearer_token(metadata: &MetadataMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = metadata.get(AUTHORIZATION_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| AuthError::MalformedAuthorization)?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(AuthError::MalformedAuthorization)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MalformedAuthorization);
    }
    Ok(Some(token))
}

/// The port an interceptor guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Public,
    Internal,
}

/// Resolves the [`Caller`] of every request before a handler runs, and
/// rejects the request when that fails.
#[derive(Clone)]
pub struct AuthInterceptor {
    authenticator: Arc<Authenticator>,
    port: Port,
}

impl AuthInterceptor {
    pub fn new(authenticator: Arc<Authenticator>, port: Port) -> Self {
        AuthInterceptor {
            authenticator,
            port,
        }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let resolved = match self.port {
            Port::Public => {
                let certificates = request.peer_certs();
                self.authenticator.public_caller(
                    request.metadata(),
                    certificates.as_deref().map(Vec::as_slice),
                )
            }
            Port::Internal => self.authenticator.internal_caller(request.metadata()),
        };
        match resolved {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err(error) => {
                if !matches!(error, AuthError::Metadata(_)) {
                    let peer = request
                        .remote_addr()
                        .map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
                    info!(%peer, port = ?self.port, reason = %error, "authentication rejected");
                }
                Err(fault::unauthenticated(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "service-token-0123456789";

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (key, value) in pairs {
            map.insert(*key, value.parse().unwrap());
        }
        map
    }

    fn with_tokens() -> Authenticator {
        let tokens = ServiceTokens::parse(&format!("scheduler {TOKEN}")).unwrap();
        Authenticator::new(Some(tokens), None, None, None)
    }

    #[test]
    fn service_token_honours_the_account_header() {
        let auth = with_tokens();
        let bearer = format!("Bearer {TOKEN}");
        let caller = auth
            .public_caller(
                &metadata(&[("authorization", &bearer), ("x-roomd-account", "acc1")]),
                None,
            )
            .unwrap();
        assert_eq!(caller.principal, Principal::account("acc1"));

        let service = auth
            .public_caller(&metadata(&[("authorization", &bearer)]), None)
            .unwrap();
        assert_eq!(service.principal, Principal::Service);
    }

    #[test]
    fn missing_wrong_or_malformed_tokens_are_rejected() {
        let auth = with_tokens();
        let cases = [
            (metadata(&[]), "no credential"),
            (metadata(&[("x-roomd-account", "acc1")]), "no credential"),
            (
                metadata(&[("authorization", "Bearer wrong-token-0123456789")]),
                "neither",
            ),
            (metadata(&[("authorization", TOKEN)]), "Bearer <token>"),
            (
                metadata(&[("authorization", "Basic abc")]),
                "Bearer <token>",
            ),
        ];
        for (request, expected) in cases {
            let error = auth.public_caller(&request, None).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn account_claims_fix_the_principal() {
        let claims = Claims {
            account: Some("acc1".into()),
            roles: vec!["nurse".into()],
            org: Some("clinic1".into()),
            ..Claims::default()
        };
        let caller =
            caller_from_claims(&metadata(&[("x-roomd-roles", "nurse")]), claims.clone()).unwrap();
        assert_eq!(caller.org, "clinic1");
        assert_eq!(
            caller.principal,
            Principal::Account {
                id: "acc1".into(),
                roles: vec!["nurse".into()]
            }
        );

        for (key, value, claimed) in [
            ("x-roomd-account", "acc2", "acc1"),
            ("x-roomd-roles", "admin", "nurse"),
            ("x-roomd-org", "clinic2", "clinic1"),
        ] {
            let error = caller_from_claims(&metadata(&[(key, value)]), claims.clone()).unwrap_err();
            assert!(
                matches!(error, AuthError::ClaimConflict { header, .. } if header == key),
                "{error}"
            );
            let message = error.to_string();
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains(&format!("{claimed:?}")), "{message}");
        }
    }

    #[test]
    fn internal_port_takes_only_the_node_token() {
        let node_token = tokens::ServiceTokens::parse("node node-token-0123456789").unwrap();
        assert_eq!(node_token.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-token");
        std::fs::write(&path, "node-token-0123456789\n").unwrap();
        let secret = tokens::load_single(&path, "--node-token-file").unwrap();
        let auth = Authenticator::new(None, None, None, Some(secret));

        let forwarded = metadata(&[
            ("authorization", "Bearer node-token-0123456789"),
            ("x-roomd-account", "acc1"),
        ]);
        let caller = auth.internal_caller(&forwarded).unwrap();
        assert_eq!(caller.principal, Principal::account("acc1"));

        for request in [
            metadata(&[]),
            metadata(&[("authorization", &format!("Bearer {TOKEN}"))]),
        ] {
            let error = auth.internal_caller(&request).unwrap_err();
            assert!(matches!(error, AuthError::NodeCredential), "{error}");
        }
    }
}
