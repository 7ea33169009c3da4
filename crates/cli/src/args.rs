//! Subcommands and flags of `roomctl`, and the parsers for their values.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use roomd_proto::v1::{PropertyDefinition, PropertyType, SortField};
use serde_json::Value;

use crate::error::CliError;

/// Help heading of the options that every subcommand takes.
const CONNECTION: &str = "Connection options";

/// Command-line client for roomd, the televisit room service.
#[derive(Debug, Parser)]
#[command(
    name = "roomctl",
    version,
    after_help = "Exit status: 0 on success, 1 when roomd rejects the request (its reason and \
                  message go to stderr), 2 for an invalid command line, 3 when roomd cannot be \
                  reached or does not reply in time."
)]
pub struct Cli {
    /// roomd address, as host:port, http://host:port or https://host:port.
    /// A host:port address uses https when --ca is given.
    #[arg(
        long,
        global = true,
        env = "ROOMD_ADDR",
        default_value = "http://127.0.0.1:50051",
        help_heading = CONNECTION
    )]
    pub addr: String,

    /// Org (tenant) the request is for. Without it, roomd uses the org of
    /// the caller's JWT, or `default`.
    #[arg(long, global = true, env = "ROOMD_ORG", help_heading = CONNECTION)]
    pub org: Option<String>,

    /// Account to act as; without it roomctl acts as a trusted service with
    /// full access. `anonymous` acts as a caller that is not signed in.
    #[arg(
        long = "as",
        global = true,
        env = "ROOMD_AS",
        value_name = "ACCOUNT",
        help_heading = CONNECTION
    )]
    pub account: Option<String>,

    /// Roles of the acting account, comma-separated.
    #[arg(
        long,
        global = true,
        env = "ROOMD_ROLES",
        value_name = "R1,R2",
        help_heading = CONNECTION
    )]
    pub roles: Option<String>,

    /// Seconds to wait for each reply; `watch` waits without limit.
    #[arg(
        long,
        global = true,
        default_value_t = 30,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = CONNECTION
    )]
    pub timeout: u64,

    /// Bearer token sent as `authorization: Bearer TOKEN`: a service token
    /// or a JWT. Prefer --token-file, since other users may see a command
    /// line.
    #[arg(
        long,
        global = true,
        env = "ROOMD_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file",
        help_heading = CONNECTION
    )]
    pub token: Option<String>,

    /// File whose content (without the trailing newline) is the bearer
    /// token.
    #[arg(
        long,
        global = true,
        env = "ROOMD_TOKEN_FILE",
        value_name = "FILE",
        help_heading = CONNECTION
    )]
    pub token_file: Option<PathBuf>,

    /// PEM CA bundle that roomd's TLS certificate is checked against;
    /// turns on TLS.
    #[arg(long, global = true, env = "ROOMD_CA", value_name = "FILE", help_heading = CONNECTION)]
    pub ca: Option<PathBuf>,

    /// PEM client certificate to present to roomd; needs --key.
    #[arg(
        long,
        global = true,
        env = "ROOMD_CERT",
        value_name = "FILE",
        requires = "key",
        help_heading = CONNECTION
    )]
    pub cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(
        long,
        global = true,
        env = "ROOMD_KEY",
        value_name = "FILE",
        requires = "cert",
        help_heading = CONNECTION
    )]
    pub key: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or replace the org's room definition.
    Define(DefineArgs),
    /// Print the org's room definition.
    Definition,
    /// Create a room.
    Create(CreateArgs),
    /// Print a room.
    Get {
        /// The room's id (`_id`).
        room_id: String,
    },
    /// Find rooms by a JSON filter over state, owner, created and indexed
    /// custom properties, for example '{"c_number": 7}'.
    Find(FindArgs),
    /// Apply a JSON update document, for example
    /// '{"$push": {"acl": ["account.acc2.read"]}}'.
    Update {
        /// The room's id (`_id`).
        room_id: String,
        /// Update document of $set, $unset, $push and $pull operators.
        #[arg(value_name = "UPDATE_JSON")]
        update: String,
        /// Apply only if the room is at this version.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Close a room.
    Close {
        /// The room's id (`_id`).
        room_id: String,
    },
    /// Close a room with the reason `deleted` and remove it.
    Delete {
        /// The room's id (`_id`).
        room_id: String,
    },
    /// Join a room.
    Join {
        /// The room's id (`_id`).
        room_id: String,
        /// Account that joins; defaults to the --as account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Leave a room.
    Leave {
        /// The room's id (`_id`).
        room_id: String,
        /// Account that leaves; defaults to the --as account.
        #[arg(long)]
        account: Option<String>,
    },
    /// List a room's participants.
    Participants {
        /// The room's id (`_id`).
        room_id: String,
    },
    /// Print a room's events, one JSON object per line, from a sequence
    /// number on, then follow them until the room closes.
    Watch {
        /// The room's id (`_id`).
        room_id: String,
        /// First sequence number to print.
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
    },
}

#[derive(Debug, Args)]
pub struct DefineArgs {
    /// Name of the org's kind of room, 1 to 200 characters.
    #[arg(long)]
    pub label: String,
    /// Custom property as c_NAME:TYPE[:indexed][:array], where TYPE is
    /// String, Number, Boolean or Date. Repeat for each property.
    #[arg(long, value_name = "c_NAME:TYPE[:indexed]")]
    pub property: Vec<String>,
    /// ACL entry applied to every new room. Repeat for each entry; without
    /// any, new rooms get `owner.delete`.
    #[arg(long, value_name = "ENTRY")]
    pub default_acl: Vec<String>,
    /// Most rooms of the org that may be not closed at once, across every
    /// node; no limit when unset.
    #[arg(long, value_name = "N")]
    pub max_open_rooms: Option<u32>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Title of the room, 1 to 200 characters.
    #[arg(long)]
    pub label: String,
    /// ACL entry such as account.acc1.read; repeat for each entry.
    #[arg(long, value_name = "ENTRY")]
    pub acl: Vec<String>,
    /// Custom value as c_NAME=VALUE. VALUE is read as JSON when it parses
    /// (7, true, ["a"]) and as a string otherwise.
    #[arg(long, value_name = "c_NAME=VALUE")]
    pub set: Vec<String>,
    /// Owner account; defaults to the --as account.
    #[arg(long)]
    pub owner: Option<String>,
    /// Connected participants allowed at once, 2 to 500; the server's
    /// default when unset.
    #[arg(long, value_name = "N")]
    pub max_participants: Option<u32>,
    /// Seconds from opening until the room closes unless someone joined.
    #[arg(long, value_name = "S")]
    pub unused_timeout: Option<u32>,
    /// Seconds from the last leave until the room closes unless someone joins.
    #[arg(long, value_name = "S")]
    pub empty_timeout: Option<u32>,
    /// Seconds from opening until the room closes regardless.
    #[arg(long, value_name = "S")]
    pub max_duration: Option<u32>,
    /// RFC 3339 time before which the room stays `new`.
    #[arg(long, value_name = "TIME")]
    pub open_at: Option<String>,
    /// Create the room open rather than `new`.
    #[arg(long)]
    pub open: bool,
    /// Client id that makes a retried create return the first room.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Filter document, for example '{"state": "open"}'; every room when
    /// absent.
    #[arg(value_name = "FILTER_JSON")]
    pub filter: Option<String>,
    /// Rooms per page, at most 1000; 0 means 100.
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
    /// Sort key as FIELD or FIELD:desc; repeat for more keys.
    #[arg(long, value_name = "FIELD[:desc]")]
    pub sort: Vec<String>,
    /// Page token printed by a previous find.
    #[arg(long)]
    pub page_token: Option<String>,
}

/// Parses `c_NAME:TYPE[:indexed][:array]`.
pub fn parse_property(spec: &str) -> Result<PropertyDefinition, CliError> {
    let invalid = |why: &str| {
        CliError::Usage(format!(
            "--property {spec:?}: {why}; expected c_NAME:TYPE[:indexed][:array]"
        ))
    };
    let mut parts = spec.split(':');
    let name = parts
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("missing name"))?;
    let kind = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        Some("string") => PropertyType::String,
        Some("number") => PropertyType::Number,
        Some("boolean") => PropertyType::Boolean,
        Some("date") => PropertyType::Date,
        Some(_) => return Err(invalid("TYPE must be String, Number, Boolean or Date")),
        None => return Err(invalid("missing TYPE")),
    };
    let mut property = PropertyDefinition {
        name: name.to_owned(),
        label: name.to_owned(),
        r#type: kind as i32,
        array: false,
        indexed: false,
    };
    for flag in parts {
        match flag {
            "indexed" => property.indexed = true,
            "array" => property.array = true,
            other => return Err(invalid(&format!("unknown flag {other:?}"))),
        }
    }
    Ok(property)
}

/// Parses `c_NAME=VALUE`, reading VALUE as JSON when it parses.
pub fn parse_assignment(assignment: &str) -> Result<(String, Value), CliError> {
    let (name, text) = assignment
        .split_once('=')
        .ok_or_else(|| CliError::Usage(format!("--set {assignment:?}: expected c_NAME=VALUE")))?;
    let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    Ok((name.to_owned(), value))
}

/// Parses `FIELD` or `FIELD:desc` (also `FIELD:asc`).
pub fn parse_sort(spec: &str) -> Result<SortField, CliError> {
    let (path, descending) = match spec.rsplit_once(':') {
        Some((path, "desc")) => (path, true),
        Some((path, "asc")) => (path, false),
        Some(_) => {
            return Err(CliError::Usage(format!(
                "--sort {spec:?}: expected FIELD, FIELD:asc or FIELD:desc"
            )));
        }
        None => (spec, false),
    };
    Ok(SortField {
        path: path.to_owned(),
        descending,
    })
}

pub fn parse_time(text: &str) -> Result<DateTime<Utc>, CliError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| CliError::Usage(format!("{text:?} is not an RFC 3339 time: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn property_spec_with_flags() {
        let property = parse_property("c_number:Number:indexed").unwrap();
        assert_eq!(property.name, "c_number");
        assert_eq!(property.r#type, PropertyType::Number as i32);
        assert!(property.indexed);
        assert!(!property.array);
        assert!(parse_property("c_tags:string:array").unwrap().array);
    }

    #[test]
    fn property_spec_rejects_bad_input() {
        for bad in ["", "c_x", "c_x:Integer", "c_x:Number:unique", ":Number"] {
            assert!(parse_property(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn assignment_reads_json_or_string() {
        assert_eq!(
            parse_assignment("c_number=7").unwrap(),
            ("c_number".into(), json!(7))
        );
        assert_eq!(parse_assignment("c_note=hello").unwrap().1, json!("hello"));
        assert_eq!(parse_assignment("c_tags=[\"a\"]").unwrap().1, json!(["a"]));
        assert!(parse_assignment("c_number").is_err());
    }

    #[test]
    fn sort_spec() {
        assert!(parse_sort("created:desc").unwrap().descending);
        assert!(!parse_sort("c_number").unwrap().descending);
        assert!(parse_sort("created:down").is_err());
    }
}
