//! The connection to roomd and the metadata every request carries.

use std::time::Duration;

use roomd_proto::v1::definitions_client::DefinitionsClient;
use roomd_proto::v1::rooms_client::RoomsClient;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use roomd_model::validate;

use crate::args::Cli;
use crate::error::{CliError, error_chain};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    channel: Channel,
    org: Option<String>,
    account: Option<String>,
    roles: Option<String>,
    /// `Bearer <token>`, sent with every request.
    authorization: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

impl Client {
    pub async fn connect(cli: &Cli) -> Result<Self, CliError> {
        check_principal(cli)?;
        let authorization = authorization(cli)?;
        let tls = tls_config(cli)?;
        let addr = if cli.addr.contains("://") {
            cli.addr.clone()
        } else if tls.is_some() {
            format!("https://{}", cli.addr)
        } else {
            format!("http://{}", cli.addr)
        };
        let mut endpoint = Endpoint::from_shared(addr.clone())
            .map_err(|e| {
                CliError::Usage(format!("--addr {:?} is not a valid address: {e}", cli.addr))
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                CliError::Usage(format!("invalid TLS settings: {}", error_chain(&e)))
            })?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| CliError::Connect { addr, source })?;
        Ok(Client {
            channel,
            org: cli.org.clone(),
            account: cli.account.clone(),
            roles: cli.roles.clone(),
            authorization,
            timeout: Duration::from_secs(cli.timeout),
        })
    }

    pub fn rooms(&self) -> RoomsClient<Channel> {
        RoomsClient::new(self.channel.clone())
    }

    pub fn definitions(&self) -> DefinitionsClient<Channel> {
        DefinitionsClient::new(self.channel.clone())
    }

    /// Wraps a message with the org and principal metadata and the reply
    /// timeout.
    pub fn request<T>(&self, message: T) -> Result<Request<T>, CliError> {
        let mut request = self.watch_request(message)?;
        request.set_timeout(self.timeout);
        Ok(request)
    }

    /// Like [`Client::request`], without a timeout, for streams that stay
    /// open.
    pub fn watch_request<T>(&self, message: T) -> Result<Request<T>, CliError> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(org) = &self.org {
            metadata.insert("x-roomd-org", header_value("--org", org)?);
        }
        if let Some(account) = &self.account {
            metadata.insert("x-roomd-account", header_value("--as", account)?);
        }
        if let Some(roles) = &self.roles {
            metadata.insert("x-roomd-roles", header_value("--roles", roles)?);
        }
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

/// Reads the bearer token of `--token` or `--token-file`. Messages name
/// the flag, never the token.
fn authorization(cli: &Cli) -> Result<Option<MetadataValue<Ascii>>, CliError> {
    let (flag, token) = match (&cli.token, &cli.token_file) {
        (Some(token), _) => ("--token", token.trim().to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!("cannot read --token-file {}: {e}", path.display()))
            })?;
            ("--token-file", text.trim().to_owned())
        }
        (None, None) => return Ok(None),
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::Usage(format!(
            "the token of {flag} must be printable ASCII without whitespace"
        )));
    }
    let value = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| CliError::Usage(format!("the token of {flag} is not a valid header value")))?;
    Ok(Some(value))
}

/// Builds the TLS settings of `--ca`, `--cert` and `--key`, or `None`
/// when TLS is off.
fn tls_config(cli: &Cli) -> Result<Option<ClientTlsConfig>, CliError> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read {flag} {}: {e}", path.display())))
    };
    let https = cli.addr.starts_with("https://");
    if cli.ca.is_none() && cli.cert.is_none() && !https {
        return Ok(None);
    }

    let mut tls = ClientTlsConfig::new();
    match &cli.ca {
        Some(path) => tls = tls.ca_certificate(Certificate::from_pem(read("--ca", path)?)),
        None => tls = tls.with_native_roots(),
    }
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        tls = tls.identity(Identity::from_pem(
            read("--cert", cert)?,
            read("--key", key)?,
        ));
    }
    Ok(Some(tls))
}

/// Checks `--org`, `--as` and `--roles` with the rules roomd applies, so a
/// typo is reported against the flag rather than as a server fault.
fn check_principal(cli: &Cli) -> Result<(), CliError> {
    let usage = |error: roomd_model::RoomError| CliError::Usage(error.to_string());
    if let Some(org) = &cli.org {
        validate::identifier("--org", org).map_err(usage)?;
    }
    if let Some(account) = cli.account.as_deref().filter(|a| *a != "anonymous") {
        validate::account("--as", account).map_err(usage)?;
    }
    if let Some(roles) = &cli.roles {
        for role in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            validate::identifier("--roles", role).map_err(usage)?;
        }
        if cli.account.is_none() {
            return Err(CliError::Usage(
                "--roles needs --as: the calling service itself has no roles".into(),
            ));
        }
    }
    Ok(())
}

fn header_value(
    flag: &str,
    value: &str,
) -> Result<MetadataValue<tonic::metadata::Ascii>, CliError> {
    value
        .parse()
        .map_err(|_| CliError::Usage(format!("{flag} {value:?}: only printable ASCII is allowed")))
}
