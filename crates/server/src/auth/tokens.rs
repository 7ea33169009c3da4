//! Static bearer tokens: the service token file and the node token file.
//!
//! A service token file has one `NAME TOKEN` pair per line, separated by
//! whitespace. Blank lines and lines starting with `#` are ignored. Names
//! are identifiers of 1 to 64 characters (`A-Z a-z 0-9 _ - .`), tokens are
//! 16 to 4096 printable ASCII characters without whitespace, and neither
//! may repeat. A node token file contains one token of the same form.
//!
//! Tokens are compared in constant time, and every configured token is
//! compared, so the time a lookup takes does not tell which entry or how
//! much of a token matched. Error messages name the file and the line,
//! never the token.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

use super::AuthConfigError;

/// Shortest token accepted, so that a token cannot be guessed by trying.
pub const MIN_TOKEN_LEN: usize = 16;
const MAX_TOKEN_LEN: usize = 4096;
const MAX_NAME_LEN: usize = 64;

/// The flag that names the service token file, for error messages.
const FLAG: &str = "--service-tokens-file";

/// A token kept only to compare presented tokens against it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Tells in constant time whether `presented` is this token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }

    /// Returns the token itself, for requests this node sends.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// The named service tokens of a token file.
#[derive(Debug, Clone, Default)]
pub struct ServiceTokens {
    entries: Vec<(String, Secret)>,
}

impl ServiceTokens {
    /// Reads and parses the token file at `path`.
    pub fn load(path: &Path) -> Result<Self, AuthConfigError> {
        let text = read_text(path, FLAG)?;
        let tokens = Self::parse(&text).map_err(|(line, message)| AuthConfigError::TokenFile {
            path: path.display().to_string(),
            line,
            message,
        })?;

        if tokens.is_empty() {
            return Err(AuthConfigError::Invalid {
                flag: FLAG,
                path: path.display().to_string(),
                message: "contains no token".into(),
            });
        }
        Ok(tokens)
    }

    /// Parses a token file. An error carries the line number (from 1) and a
    /// message without the token. Text with no token line parses to an
    /// empty set.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut entries: Vec<(String, Secret)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }

            let mut fields = line.split_whitespace();
            let (Some(name), Some(token), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err((
                    number,
                    "expected NAME TOKEN, separated by whitespace".into(),
                ));
            };
            check_name(name).map_err(|message| (number, message))?;
            let token = check_token(token).map_err(|message| (number, message))?;

            if entries.iter().any(|(existing, _)| existing == name) {
                return Err((number, format!("name {name:?} appears twice")));
            }
            if entries
                .iter()
                .any(|(_, secret)| secret.matches(token.expose()))
            {
                return Err((
                    number,
                    format!("the token of {name:?} is already used by another name"),
                ));
            }
            entries.push((name.to_owned(), token));
        }

        Ok(ServiceTokens { entries })
    }

    /// Returns the name of the token `presented` is, comparing it with
    /// every entry.
    pub fn find(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (name, secret) in &self.entries {
            if secret.matches(presented) {
                found = Some(name.as_str());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Reads a file that contains one token, such as the node token.
pub fn load_single(path: &Path, flag: &'static str) -> Result<Secret, AuthConfigError> {
    let text = read_text(path, flag)?;
    check_token(text.trim()).map_err(|message| AuthConfigError::Invalid {
        flag,
        path: path.display().to_string(),
        message,
    })
}

fn read_text(path: &Path, flag: &'static str) -> Result<String, AuthConfigError> {
    std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
        flag,
        path: path.display().to_string(),
        source,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(format!(
            "name {name:?} is invalid: use 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.'"
        ));
    }
    Ok(())
}

fn check_token(token: &str) -> Result<Secret, String> {
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be printable ASCII without whitespace".into());
    }
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len()) {
        return Err(format!(
            "the token has {} characters; use {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN}",
            token.len()
        ));
    }
    Ok(Secret(token.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "0123456789abcdef-first";
    const SECOND: &str = "0123456789abcdef-second";

    #[test]
    fn token_file_parses_names_comments_and_blank_lines() {
        let text = format!("# services\n\nscheduler {FIRST}\n  billing\t{SECOND}  \n");
        let tokens = ServiceTokens::parse(&text).unwrap();

        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.find(FIRST.as_bytes()), Some("scheduler"));
        assert_eq!(tokens.find(SECOND.as_bytes()), Some("billing"));
        assert_eq!(tokens.find(b"0123456789abcdef-third"), None);
        assert_eq!(tokens.find(&FIRST.as_bytes()[..FIRST.len() - 1]), None);
    }

    #[test]
    fn token_file_errors_name_the_line_not_the_token() {
        let cases = [
            (format!("scheduler {FIRST} extra"), 1, "expected NAME TOKEN"),
            ("\nscheduler".to_owned(), 2, "expected NAME TOKEN"),
            (format!("sched/uler {FIRST}"), 1, "is invalid"),
            ("scheduler short-secret".to_owned(), 1, "characters"),
            (format!("a {FIRST}\na {SECOND}"), 2, "appears twice"),
            (format!("a {FIRST}\nb {FIRST}"), 2, "already used"),
        ];
        for (text, line, expected) in cases {
            let (found_line, message) = ServiceTokens::parse(&text).unwrap_err();
            assert_eq!(found_line, line, "{text:?}");
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(!message.contains(FIRST), "the token leaked: {message}");
            assert!(
                !message.contains("short-secret"),
                "the token leaked: {message}"
            );
        }
    }

    #[test]
    fn token_file_load_errors_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "# nothing here\n").unwrap();
        let missing = dir.path().join("missing");

        for path in [empty, missing] {
            let message = ServiceTokens::load(&path).unwrap_err().to_string();
            assert!(message.contains("--service-tokens-file"), "{message}");
            assert!(message.contains(path.to_str().unwrap()), "{message}");
        }
    }

    #[test]
    fn secret_debug_hides_the_token() {
        let tokens = ServiceTokens::parse(&format!("scheduler {FIRST}")).unwrap();
        let debug_output = format!("{tokens:?}");
        assert!(!debug_output.contains(FIRST), "{debug_output}");
    }
}
