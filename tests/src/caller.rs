//! [`Caller`]: the org and acting principal a request carries in its
//! `x-roomd-*` metadata, and the bearer token it presents.

use tonic::Request;
use tonic::metadata::MetadataValue;

/// The org and acting principal that a request carries in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub org: String,
    /// The acting account; `None` acts as the calling service itself.
    pub account: Option<String>,
    pub roles: Vec<String>,
    /// Sent as `authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

impl Caller {
    /// Returns a caller that acts as the calling service itself in `org`,
    /// with full access.
    pub fn service(org: &str) -> Self {
        Caller {
            org: org.to_owned(),
            account: None,
            roles: Vec::new(),
            token: None,
        }
    }

    /// Returns a caller that acts as the account `account` of `org`, with
    /// no roles.
    pub fn account(org: &str, account: &str) -> Self {
        Caller {
            org: org.to_owned(),
            account: Some(account.to_owned()),
            roles: Vec::new(),
            token: None,
        }
    }

    /// Returns this caller presenting `token` as its bearer token.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn with_roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|role| (*role).to_owned()).collect();
        self
    }

    /// Wraps `message` in a request with this caller's metadata.
    ///
    /// # Panics
    /// When a value cannot be a gRPC metadata value because it contains a
    /// byte that is not visible ASCII or a space.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("x-roomd-org", metadata_value(&self.org));
        if let Some(account) = &self.account {
            metadata.insert("x-roomd-account", metadata_value(account));
        }
        if !self.roles.is_empty() {
            metadata.insert("x-roomd-roles", metadata_value(&self.roles.join(",")));
        }
        if let Some(token) = &self.token {
            metadata.insert("authorization", metadata_value(&format!("Bearer {token}")));
        }
        request
    }
}

fn metadata_value(text: &str) -> MetadataValue<tonic::metadata::Ascii> {
    MetadataValue::try_from(text)
        .unwrap_or_else(|e| panic!("{text:?} is not a valid gRPC metadata value: {e}"))
}
