//! `FindRooms` filter documents and sort orders.
//!
//! A filter is a JSON object whose keys are fields or the logical operators
//! `$and` and `$or`. A field maps to a value (equality) or to an object of
//! comparison operators: `$eq $ne $in $nin $gt $gte $lt $lte`. Filterable
//! fields are `state`, `owner`, `created` and the definition's indexed custom
//! properties. On array properties a comparison matches when any element
//! matches, and `$ne`/`$nin` match when no element equals.
//!
//! ```json
//! {"c_number": 7}
//! {"state": {"$in": ["new", "open"]}, "created": {"$gte": "2026-01-01T00:00:00Z"}}
//! {"$or": [{"owner": "acc1"}, {"c_number": {"$gt": 10}}]}
//! ```

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::definition::{PropertyType, RoomDefinition, parse_date};
use crate::error::{RoomError, RoomResult};
use crate::limits::Limits;
pub use crate::limits::MAX_FILTER_DEPTH;
use crate::room::{Room, RoomState};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Compare {
        field: FilterField,
        op: CompareOp,
        operand: Vec<Scalar>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterField {
    State,
    Owner,
    Created,
    Custom { name: String, kind: PropertyType },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    In,
    Nin,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A typed value a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    String(String),
    Number(f64),
    Boolean(bool),
    Date(DateTime<Utc>),
}

impl Scalar {
    fn compare(&self, other: &Scalar) -> Option<Ordering> {
        match (self, other) {
            (Scalar::String(a), Scalar::String(b)) => Some(a.cmp(b)),
            (Scalar::Number(a), Scalar::Number(b)) => a.partial_cmp(b),
            (Scalar::Boolean(a), Scalar::Boolean(b)) => Some(a.cmp(b)),
            (Scalar::Date(a), Scalar::Date(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Filter {
    /// Parses a filter from JSON text; empty text matches every room.
    pub fn parse(text: &str, definition: &RoomDefinition, limits: &Limits) -> RoomResult<Self> {
        if text.trim().is_empty() {
            return Ok(Filter::And(Vec::new()));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| RoomError::validation("filter", format!("is not valid JSON: {e}")))?;
        Self::from_value(&value, definition, limits)
    }

    /// Parses a filter from a JSON value of at most `limits.max_filter_nodes`
    /// values, nested at most `limits.max_filter_depth` levels.
    pub fn from_value(
        value: &Value,
        definition: &RoomDefinition,
        limits: &Limits,
    ) -> RoomResult<Self> {
        let nodes = count_nodes(value);
        if nodes > limits.max_filter_nodes {
            return Err(RoomError::validation(
                "filter",
                format!(
                    "has {nodes} JSON values; the limit is {}",
                    limits.max_filter_nodes
                ),
            ));
        }
        let parser = Parser {
            definition,
            max_depth: limits.max_filter_depth,
        };
        parser.parse_object("filter", value, 0)
    }

    /// Tells whether `room` matches the filter.
    pub fn matches(&self, room: &Room) -> bool {
        match self {
            Filter::And(filters) => filters.iter().all(|f| f.matches(room)),
            Filter::Or(filters) => filters.iter().any(|f| f.matches(room)),
            Filter::Compare { field, op, operand } => {
                let values = field_values(field, room);
                compare(&values, *op, operand)
            }
        }
    }
}

/// Counts the JSON values of a document: every object, array and scalar.
fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Object(fields) => 1 + fields.values().map(count_nodes).sum::<usize>(),
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

struct Parser<'a> {
    definition: &'a RoomDefinition,
    max_depth: usize,
}

impl Parser<'_> {
    fn parse_object(&self, path: &str, value: &Value, depth: usize) -> RoomResult<Filter> {
        let definition = self.definition;
        if depth > self.max_depth {
            return Err(RoomError::validation(
                path,
                format!(
                    "nests $and/$or deeper than {} levels, the limit",
                    self.max_depth
                ),
            ));
        }
        let Value::Object(fields) = value else {
            return Err(RoomError::validation(path, "must be a JSON object"));
        };

        let mut clauses = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = value else {
                        return Err(RoomError::validation(
                            key.as_str(),
                            "must be an array of filters",
                        ));
                    };
                    if items.is_empty() {
                        return Err(RoomError::validation(key.as_str(), "must not be empty"));
                    }
                    let parts = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.parse_object(&format!("{key}[{i}]"), item, depth + 1))
                        .collect::<RoomResult<Vec<_>>>()?;
                    clauses.push(if key == "$and" {
                        Filter::And(parts)
                    } else {
                        Filter::Or(parts)
                    });
                }
                other if other.starts_with('$') => {
                    return Err(RoomError::validation(
                        other,
                        "unknown logical operator; expected $and or $or",
                    ));
                }
                field => {
                    let field_ref = resolve_field(field, definition)?;
                    clauses.extend(parse_conditions(field, field_ref, value)?);
                }
            }
        }

        Ok(match clauses.len() {
            1 => clauses.pop().expect("one clause"),
            _ => Filter::And(clauses),
        })
    }
}

fn resolve_field(path: &str, definition: &RoomDefinition) -> RoomResult<FilterField> {
    match path {
        "state" => Ok(FilterField::State),
        "owner" => Ok(FilterField::Owner),
        "created" => Ok(FilterField::Created),
        name if name.starts_with("c_") => {
            let property = definition.require_property(path, name)?;
            if !property.indexed {
                return Err(RoomError::validation(
                    path,
                    "is not indexed; only indexed properties can be filtered or sorted on",
                ));
            }
            Ok(FilterField::Custom {
                name: name.to_owned(),
                kind: property.kind,
            })
        }
        _ => Err(RoomError::validation(
            path,
            "cannot be filtered on; use state, owner, created or an indexed c_ property",
        )),
    }
}

fn parse_conditions(path: &str, field: FilterField, value: &Value) -> RoomResult<Vec<Filter>> {
    let operators = match value {
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => map.clone(),
        other => Map::from_iter([("$eq".to_owned(), other.clone())]),
    };

    let mut filters = Vec::new();
    for (name, operand) in &operators {
        let op = match name.as_str() {
            "$eq" => CompareOp::Eq,
            "$ne" => CompareOp::Ne,
            "$in" => CompareOp::In,
            "$nin" => CompareOp::Nin,
            "$gt" => CompareOp::Gt,
            "$gte" => CompareOp::Gte,
            "$lt" => CompareOp::Lt,
            "$lte" => CompareOp::Lte,
            _ => {
                return Err(RoomError::validation(
                    path,
                    format!(
                        "{name} is not a comparison operator; expected $eq $ne $in $nin $gt $gte $lt $lte"
                    ),
                ));
            }
        };
        let operand = match op {
            CompareOp::In | CompareOp::Nin => {
                let Value::Array(items) = operand else {
                    return Err(RoomError::validation(
                        path,
                        format!("{name} takes an array"),
                    ));
                };
                items
                    .iter()
                    .map(|item| parse_scalar(path, &field, item))
                    .collect::<RoomResult<Vec<_>>>()?
            }
            _ => vec![parse_scalar(path, &field, operand)?],
        };
        let ordered = matches!(
            op,
            CompareOp::Gt | CompareOp::Gte | CompareOp::Lt | CompareOp::Lte
        );
        if ordered && matches!(operand.first(), Some(Scalar::Boolean(_))) {
            return Err(RoomError::validation(
                path,
                format!("{name} does not apply to booleans"),
            ));
        }
        filters.push(Filter::Compare {
            field: field.clone(),
            op,
            operand,
        });
    }
    Ok(filters)
}

fn parse_scalar(path: &str, field: &FilterField, value: &Value) -> RoomResult<Scalar> {
    let wrong = |expected: &str| {
        RoomError::validation(
            path,
            format!("must be compared with {expected}, not {value}"),
        )
    };
    match field {
        FilterField::State => {
            let text = value.as_str().ok_or_else(|| wrong("a state string"))?;
            let state: RoomState = text
                .parse()
                .map_err(|message: String| RoomError::validation(path, message))?;
            Ok(Scalar::String(state.to_string()))
        }
        FilterField::Owner => value
            .as_str()
            .map(|s| Scalar::String(s.to_owned()))
            .ok_or_else(|| wrong("an account id string")),
        FilterField::Created => {
            let text = value.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
            Ok(Scalar::Date(parse_date(path, text)?))
        }
        FilterField::Custom { kind, .. } => match kind {
            PropertyType::String => value
                .as_str()
                .map(|s| Scalar::String(s.to_owned()))
                .ok_or_else(|| wrong("a string")),
            PropertyType::Number => value
                .as_f64()
                .map(Scalar::Number)
                .ok_or_else(|| wrong("a number")),
            PropertyType::Boolean => value
                .as_bool()
                .map(Scalar::Boolean)
                .ok_or_else(|| wrong("a boolean")),
            PropertyType::Date => {
                let text = value.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
                Ok(Scalar::Date(parse_date(path, text)?))
            }
        },
    }
}

/// Returns the room's values for `field`: none when it is absent, several
/// for an array property.
fn field_values(field: &FilterField, room: &Room) -> Vec<Scalar> {
    match field {
        FilterField::State => vec![Scalar::String(room.state.to_string())],
        FilterField::Owner => room
            .owner
            .iter()
            .map(|o| Scalar::String(o.clone()))
            .collect(),
        FilterField::Created => vec![Scalar::Date(room.created)],
        FilterField::Custom { name, kind } => match room.custom.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| stored_scalar(*kind, v))
                .collect(),
            Some(value) => stored_scalar(*kind, value).into_iter().collect(),
        },
    }
}

fn stored_scalar(kind: PropertyType, value: &Value) -> Option<Scalar> {
    match kind {
        PropertyType::String => value.as_str().map(|s| Scalar::String(s.to_owned())),
        PropertyType::Number => value.as_f64().map(Scalar::Number),
        PropertyType::Boolean => value.as_bool().map(Scalar::Boolean),
        PropertyType::Date => value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| Scalar::Date(d.with_timezone(&Utc))),
    }
}

fn compare(values: &[Scalar], op: CompareOp, operand: &[Scalar]) -> bool {
    let equals_any = |value: &Scalar| {
        operand
            .iter()
            .any(|o| value.compare(o) == Some(Ordering::Equal))
    };
    let ordered = |accept: fn(Ordering) -> bool| {
        values
            .iter()
            .any(|v| v.compare(&operand[0]).is_some_and(accept))
    };
    match op {
        CompareOp::Eq | CompareOp::In => values.iter().any(equals_any),
        CompareOp::Ne | CompareOp::Nin => !values.iter().any(equals_any),
        CompareOp::Gt => ordered(|o| o == Ordering::Greater),
        CompareOp::Gte => ordered(|o| o != Ordering::Less),
        CompareOp::Lt => ordered(|o| o == Ordering::Less),
        CompareOp::Lte => ordered(|o| o != Ordering::Greater),
    }
}

/// One key of a sort order.
#[derive(Debug, Clone, PartialEq)]
pub struct SortField {
    pub path: String,
    pub descending: bool,
}

/// A checked sort order; rooms that tie on every key sort by id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SortOrder {
    keys: Vec<(FilterField, bool)>,
}

impl SortOrder {
    /// Checks sort fields against the definition. No field sorts by
    /// creation time, oldest first.
    pub fn new(fields: &[SortField], definition: &RoomDefinition) -> RoomResult<Self> {
        let keys = fields
            .iter()
            .map(|field| Ok((resolve_field(&field.path, definition)?, field.descending)))
            .collect::<RoomResult<Vec<_>>>()?;
        Ok(SortOrder { keys })
    }

    pub fn compare(&self, a: &Room, b: &Room) -> Ordering {
        for (field, descending) in &self.keys {
            let order = compare_first(&field_values(field, a), &field_values(field, b));
            let order = if *descending { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id))
    }
}

/// Orders by each side's first value; a missing value sorts first.
fn compare_first(a: &[Scalar], b: &[Scalar]) -> Ordering {
    match (a.first(), b.first()) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.compare(y).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::room::tests::{definition, open_room};

    fn filter(value: Value) -> RoomResult<Filter> {
        Filter::from_value(&value, &definition(), &Limits::default())
    }

    #[test]
    fn equality_on_indexed_property() {
        let mut room = open_room(&[]);
        room.custom.insert("c_number".into(), json!(7));
        assert!(filter(json!({"c_number": 7})).unwrap().matches(&room));
        assert!(!filter(json!({"c_number": 8})).unwrap().matches(&room));
        assert!(
            filter(json!({"c_number": {"$gte": 7, "$lt": 8}}))
                .unwrap()
                .matches(&room)
        );
    }

    #[test]
    fn state_and_logical_operators() {
        let room = open_room(&[]);
        assert!(filter(json!({"state": "open"})).unwrap().matches(&room));
        assert!(!filter(json!({"state": "closed"})).unwrap().matches(&room));
        assert!(
            filter(json!({"$or": [{"state": "closed"}, {"owner": "owner1"}]}))
                .unwrap()
                .matches(&room)
        );
        assert!(
            filter(json!({"state": {"$nin": ["new", "closed"]}}))
                .unwrap()
                .matches(&room)
        );
        assert!(filter(json!({})).unwrap().matches(&room));
    }

    #[test]
    fn missing_value_matches_only_negations() {
        let room = open_room(&[]);
        assert!(!filter(json!({"c_number": 7})).unwrap().matches(&room));
        assert!(
            filter(json!({"c_number": {"$ne": 7}}))
                .unwrap()
                .matches(&room)
        );
    }

    #[test]
    fn bad_filters_name_the_path() {
        let cases = [
            (json!({"c_tags": "a"}), "c_tags"),
            (json!({"label": "a"}), "label"),
            (json!({"c_number": "7"}), "c_number"),
            (json!({"c_number": {"$regex": "7"}}), "c_number"),
            (json!({"state": "opened"}), "state"),
            (json!({"$nor": []}), "$nor"),
            (json!({"$and": {}}), "$and"),
            (json!({"created": {"$gt": "yesterday"}}), "created"),
            (json!([]), "filter"),
        ];
        for (value, path) in cases {
            let err = filter(value.clone()).unwrap_err();
            assert_eq!(err.metadata(), vec![("path", path.to_string())], "{value}");
        }
    }

    fn nested(depth: usize) -> Value {
        let mut value = json!({"state": "open"});
        for _ in 0..depth {
            value = json!({"$and": [value]});
        }
        value
    }

    #[test]
    fn depth_at_and_over_the_limit() {
        let limits = Limits {
            max_filter_depth: 3,
            ..Limits::default()
        };
        assert!(Filter::from_value(&nested(3), &definition(), &limits).is_ok());
        let err = Filter::from_value(&nested(4), &definition(), &limits).unwrap_err();
        assert_eq!(err.reason(), "invalidArgument.validation");
        assert!(err.to_string().contains("3 levels, the limit"), "{err}");
    }

    #[test]
    fn depth_ceiling_holds_by_default() {
        assert!(filter(nested(Limits::default().max_filter_depth)).is_ok());
        assert!(filter(nested(MAX_FILTER_DEPTH + 1)).is_err());
    }

    #[test]
    fn nodes_at_and_over_the_limit() {
        let limits = Limits {
            max_filter_nodes: 5,
            ..Limits::default()
        };
        // The object, the $in object, its array and two strings: 5 values.
        let at = json!({"state": {"$in": ["new", "open"]}});
        assert!(Filter::from_value(&at, &definition(), &limits).is_ok());
        let over = json!({"state": {"$in": ["new", "open", "closed"]}});
        let err = Filter::from_value(&over, &definition(), &limits).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "filter".to_string())]);
        assert!(
            err.to_string()
                .contains("has 6 JSON values; the limit is 5"),
            "{err}"
        );
    }

    #[test]
    fn sort_by_custom_descending() {
        let mut a = open_room(&[]);
        let mut b = open_room(&[]);
        a.custom.insert("c_number".into(), json!(1));
        b.custom.insert("c_number".into(), json!(2));
        let order = SortOrder::new(
            &[SortField {
                path: "c_number".into(),
                descending: true,
            }],
            &definition(),
        )
        .unwrap();
        assert_eq!(order.compare(&a, &b), Ordering::Greater);
    }
}
