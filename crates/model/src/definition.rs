//! The per-org room definition: a label, the ACL applied to new rooms, and
//! the typed custom properties (`c_*`) that rooms of the org may carry.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::acl::{AclEntry, Grantee, Level};
use crate::error::{RoomError, RoomResult};
use crate::limits::Limits;
use crate::room::push_distinct;
use crate::validate;

pub const MAX_PROPERTIES: usize = 100;
pub const MAX_PROPERTY_NAME_CHARS: usize = 64;
/// Maximum number of distinct entries in a room definition's default ACL,
/// the same as the default limit on a room's ACL.
pub const MAX_DEFAULT_ACL_ENTRIES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropertyType {
    String,
    Number,
    Boolean,
    Date,
}

impl std::str::FromStr for PropertyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "string" => Ok(PropertyType::String),
            "number" => Ok(PropertyType::Number),
            "boolean" => Ok(PropertyType::Boolean),
            "date" => Ok(PropertyType::Date),
            _ => Err(format!(
                "unknown property type {s:?}; expected String, Number, Boolean or Date"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyDefinition {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default)]
    pub array: bool,
    #[serde(default)]
    pub indexed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDefinition {
    pub org: String,
    pub label: String,
    pub default_acl: Vec<AclEntry>,
    pub properties: Vec<PropertyDefinition>,
    /// Most rooms of the org that may be not closed at once, across every
    /// node; no limit when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_rooms: Option<u32>,
}

impl RoomDefinition {
    /// Returns the definition an org has before it stores one: no custom
    /// properties, and an ACL that gives the owner full access.
    pub fn implicit(org: &str) -> Self {
        RoomDefinition {
            org: org.to_owned(),
            label: "Room".to_owned(),
            default_acl: vec![AclEntry::new(Grantee::Owner, Level::Delete)],
            properties: Vec::new(),
            max_open_rooms: None,
        }
    }

    /// Builds a definition from request fields, checking every one of them.
    /// An empty `default_acl` becomes `owner.delete`.
    pub fn new(
        org: &str,
        label: &str,
        default_acl: &[String],
        properties: Vec<PropertyDefinition>,
    ) -> RoomResult<Self> {
        validate::identifier("org", org)?;
        validate::label("label", label, validate::MAX_LABEL_CHARS)?;

        let mut acl = Vec::with_capacity(default_acl.len());
        for (i, text) in default_acl.iter().enumerate() {
            let entry = AclEntry::parse_at(&format!("defaultAcl[{i}]"), text)?;
            push_distinct("defaultAcl", &mut acl, entry, MAX_DEFAULT_ACL_ENTRIES)?;
        }
        if acl.is_empty() {
            acl.push(AclEntry::new(Grantee::Owner, Level::Delete));
        }

        if properties.len() > MAX_PROPERTIES {
            return Err(RoomError::validation(
                "properties",
                format!(
                    "has {} entries; the maximum is {MAX_PROPERTIES}",
                    properties.len()
                ),
            ));
        }
        let mut names = HashSet::new();
        for (i, property) in properties.iter().enumerate() {
            let path = format!("properties[{i}]");
            check_property_name(&format!("{path}.name"), &property.name)?;
            validate::label(
                &format!("{path}.label"),
                &property.label,
                validate::MAX_LABEL_CHARS,
            )?;
            if !names.insert(property.name.as_str()) {
                return Err(RoomError::validation(
                    format!("{path}.name"),
                    format!("property {} is defined twice", property.name),
                ));
            }
        }

        Ok(RoomDefinition {
            org: org.to_owned(),
            label: label.to_owned(),
            default_acl: acl,
            properties,
            max_open_rooms: None,
        })
    }

    /// Sets the org's quota of rooms that are not closed; `None` lifts it.
    pub fn with_max_open_rooms(mut self, max_open_rooms: Option<u32>) -> RoomResult<Self> {
        if max_open_rooms == Some(0) {
            return Err(RoomError::validation(
                "maxOpenRooms",
                "must be at least 1; leave it unset for no limit",
            ));
        }
        self.max_open_rooms = max_open_rooms;
        Ok(self)
    }

    pub fn property(&self, name: &str) -> Option<&PropertyDefinition> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Looks up a custom property by name, with a fault when it is unknown.
    pub fn require_property(&self, path: &str, name: &str) -> RoomResult<&PropertyDefinition> {
        self.property(name).ok_or_else(|| {
            RoomError::validation(
                path,
                format!(
                    "{name} is not a property of the room definition of org {}",
                    self.org
                ),
            )
        })
    }

    /// Checks a whole set of custom values and returns them in stored form.
    pub fn check_values(
        &self,
        values: &BTreeMap<String, Value>,
        limits: &Limits,
    ) -> RoomResult<BTreeMap<String, Value>> {
        Limits::check_growth("custom", 0, values.len(), limits.max_custom_properties)?;
        values
            .iter()
            .map(|(name, value)| {
                let property = self.require_property(name, name)?;
                Ok((name.clone(), property.check_value(name, value, limits)?))
            })
            .collect()
    }
}

impl PropertyDefinition {
    /// Checks a value for this property (an array for array properties) and
    /// returns it in stored form: dates become RFC 3339 in UTC.
    pub fn check_value(&self, path: &str, value: &Value, limits: &Limits) -> RoomResult<Value> {
        if !self.array {
            return self.check_scalar(path, value, limits);
        }
        let Value::Array(items) = value else {
            return Err(RoomError::validation(
                path,
                format!("must be an array of {:?} values", self.kind),
            ));
        };
        check_array_items(path, items.len(), limits)?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.check_scalar(&format!("{path}[{i}]"), item, limits))
            .collect::<RoomResult<Vec<_>>>()
            .map(Value::Array)
    }

    /// Checks one element: the value itself, or one item of an array.
    pub fn check_scalar(&self, path: &str, value: &Value, limits: &Limits) -> RoomResult<Value> {
        check_scalar(self.kind, path, value, limits)
    }
}

/// Checks the item count of a custom array value.
pub fn check_array_items(path: &str, count: usize, limits: &Limits) -> RoomResult<()> {
    let max = limits.max_custom_array_items;
    if count > max {
        return Err(RoomError::validation(
            path,
            format!("has {count} items; the limit is {max}"),
        ));
    }
    Ok(())
}

/// Checks a scalar of type `kind` and returns it in stored form.
pub fn check_scalar(
    kind: PropertyType,
    path: &str,
    value: &Value,
    limits: &Limits,
) -> RoomResult<Value> {
    let wrong_type = || RoomError::validation(path, format!("must be a {kind:?}, not {value}"));
    match kind {
        PropertyType::String => {
            let text = value.as_str().ok_or_else(wrong_type)?;
            let chars = text.chars().count();
            let max = limits.max_custom_value_chars;
            if chars > max {
                return Err(RoomError::validation(
                    path,
                    format!("is {chars} characters long; the limit is {max}"),
                ));
            }
            Ok(value.clone())
        }
        PropertyType::Number => {
            // serde_json rejects NaN and infinities at parse time, so any
            // number that arrives here is finite.
            value.as_f64().ok_or_else(wrong_type)?;
            Ok(value.clone())
        }
        PropertyType::Boolean => {
            value.as_bool().ok_or_else(wrong_type)?;
            Ok(value.clone())
        }
        PropertyType::Date => {
            let text = value.as_str().ok_or_else(wrong_type)?;
            let date = parse_date(path, text)?;
            Ok(Value::String(format_date(&date)))
        }
    }
}

/// Parses an RFC 3339 time and converts it to UTC. The time in UTC must fall
/// in the years 0000 to 9999, the only years RFC 3339 can write, so that its
/// stored form parses again: `0000-01-01T00:00:00+01:00` is rejected.
pub fn parse_date(path: &str, text: &str) -> RoomResult<DateTime<Utc>> {
    let date = DateTime::parse_from_rfc3339(text)
        .map(|date| date.with_timezone(&Utc))
        .map_err(|e| {
            RoomError::validation(path, format!("{text:?} is not an RFC 3339 time: {e}"))
        })?;
    if !(0..=9999).contains(&date.year()) {
        return Err(RoomError::validation(
            path,
            format!("{text:?} falls outside the years 0000 to 9999 in UTC"),
        ));
    }
    Ok(date)
}

pub fn format_date(date: &DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn check_property_name(path: &str, name: &str) -> RoomResult<()> {
    let valid = name.len() > 2
        && name.len() <= MAX_PROPERTY_NAME_CHARS
        && name.starts_with("c_")
        && name[2..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(RoomError::validation(
            path,
            format!(
                "{name:?} is not a custom property name: use c_ followed by up to {} ASCII letters, digits or underscores",
                MAX_PROPERTY_NAME_CHARS - 2
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn property(name: &str, kind: PropertyType, array: bool) -> PropertyDefinition {
        PropertyDefinition {
            name: name.into(),
            label: name.into(),
            kind,
            array,
            indexed: false,
        }
    }

    #[test]
    fn definition_defaults_acl_to_owner_delete() {
        let definition = RoomDefinition::new("org1", "Room", &[], vec![]).unwrap();
        assert_eq!(
            definition.default_acl,
            vec![AclEntry::new(Grantee::Owner, Level::Delete)]
        );
    }

    #[test]
    fn definition_rejects_bad_names_and_duplicates() {
        let bad = RoomDefinition::new(
            "o",
            "Room",
            &[],
            vec![property("number", PropertyType::Number, false)],
        );
        assert_eq!(
            bad.unwrap_err().metadata(),
            vec![("path", "properties[0].name".to_string())]
        );

        let twice = RoomDefinition::new(
            "o",
            "Room",
            &[],
            vec![
                property("c_a", PropertyType::Number, false),
                property("c_a", PropertyType::String, false),
            ],
        );
        assert!(twice.is_err());
    }

    #[test]
    fn values_are_checked_by_type() {
        let number = property("c_n", PropertyType::Number, false);
        assert_eq!(
            number.check_value("c_n", &json!(7), &limits()).unwrap(),
            json!(7)
        );
        assert!(number.check_value("c_n", &json!("7"), &limits()).is_err());

        let flag = property("c_b", PropertyType::Boolean, false);
        assert!(flag.check_value("c_b", &json!(1), &limits()).is_err());

        let date = property("c_d", PropertyType::Date, false);
        assert_eq!(
            date.check_value("c_d", &json!("2026-01-02T03:04:05+01:00"), &limits())
                .unwrap(),
            json!("2026-01-02T02:04:05Z")
        );
        assert!(
            date.check_value("c_d", &json!("yesterday"), &limits())
                .is_err()
        );
    }

    #[test]
    fn array_values_name_the_bad_item() {
        let tags = property("c_tags", PropertyType::String, true);
        assert!(
            tags.check_value("c_tags", &json!(["a", "b"]), &limits())
                .is_ok()
        );
        let err = tags
            .check_value("c_tags", &json!(["a", 2]), &limits())
            .unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "c_tags[1]".to_string())]);
        assert!(tags.check_value("c_tags", &json!("a"), &limits()).is_err());
    }

    #[test]
    fn string_value_at_and_over_the_limit() {
        let limits = Limits {
            max_custom_value_chars: 3,
            ..Limits::default()
        };
        let note = property("c_note", PropertyType::String, false);
        assert!(note.check_value("c_note", &json!("abc"), &limits).is_ok());
        let err = note
            .check_value("c_note", &json!("abcd"), &limits)
            .unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "c_note".to_string())]);
        assert!(err.to_string().contains("the limit is 3"), "{err}");

        let tags = property("c_tags", PropertyType::String, true);
        let err = tags
            .check_value("c_tags", &json!(["abc", "abcd"]), &limits)
            .unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "c_tags[1]".to_string())]);
    }

    #[test]
    fn array_items_at_and_over_the_limit() {
        let limits = Limits {
            max_custom_array_items: 2,
            ..Limits::default()
        };
        let tags = property("c_tags", PropertyType::String, true);
        assert!(
            tags.check_value("c_tags", &json!(["a", "b"]), &limits)
                .is_ok()
        );
        let err = tags
            .check_value("c_tags", &json!(["a", "b", "c"]), &limits)
            .unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "c_tags".to_string())]);
        assert!(err.to_string().contains("the limit is 2"), "{err}");
    }

    // Found by the property_value and update_document fuzz targets: a date
    // whose UTC form has no four-digit year was accepted, but its stored form
    // was no longer an RFC 3339 time.
    #[test]
    fn dates_outside_four_digit_years_rejected() {
        let date = property("c_d", PropertyType::Date, false);
        for text in ["0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"] {
            let err = date
                .check_value("c_d", &json!(text), &Limits::default())
                .unwrap_err();
            assert_eq!(err.reason(), "invalidArgument.validation", "{text}");
            assert_eq!(err.metadata(), vec![("path", "c_d".to_string())], "{text}");
        }
        for text in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
            let stored = date
                .check_value("c_d", &json!(text), &Limits::default())
                .unwrap();
            assert_eq!(
                date.check_value("c_d", &stored, &Limits::default())
                    .unwrap(),
                stored,
                "{text}"
            );
        }
    }

    // Found by the property_value fuzz target: without serde_json's
    // `float_roundtrip` feature this number read back from its JSON text
    // one unit in the last place off.
    #[test]
    fn number_value_survives_json_text() {
        let number = property("c_n", PropertyType::Number, false);
        let value: Value = serde_json::from_str("1.6274917564416392e-118").unwrap();
        let stored = number
            .check_value("c_n", &value, &Limits::default())
            .unwrap();
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(text, "1.6274917564416392e-118");
        let loaded: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(loaded, stored);
    }

    #[test]
    fn default_acl_over_maximum_rejected() {
        let entries: Vec<String> = (0..=MAX_DEFAULT_ACL_ENTRIES)
            .map(|i| format!("account.acc{i}.read"))
            .collect();
        let err = RoomDefinition::new("o", "Room", &entries, vec![]).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "defaultAcl".to_string())]);
    }
}
