//! `FindRooms` filters and sort orders. A filter that parses evaluates
//! against every sample room, and its JSON text and value parse alike.
//! Wrapping it in `$and` or `$or` with itself does not change what it
//! matches. The wrappers parse with [`wrapper_limits`], which leave room
//! for the extra level. The negation of a filter built from
//! `$eq $ne $in $nin` matches exactly the rooms the filter does not. A sort
//! order that parses orders rooms consistently.

#![no_main]

use std::cmp::Ordering;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use roomd_fuzz::{MAX_JSON_DEPTH, definition, field_value, limits, rooms, text_mode, word};
use roomd_model::filter::{CompareOp, MAX_FILTER_DEPTH};
use roomd_model::{Filter, Limits, Room, RoomDefinition, RoomError, SortField, SortOrder};
use serde_json::{Map, Value, json};

const FIELDS: &[&str] = &[
    "state", "owner", "created", "c_text", "c_number", "c_flag", "c_date", "c_tags", "c_dates",
    "c_note", "label", "$and", "$or", "$nor",
];
const OPERATORS: &[&str] = &[
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$regex",
];

/// Builds a filter object: fields mapped to values or operator objects, and
/// `$and`/`$or` lists nested up to a little past `max_depth`.
fn structured_filter(
    u: &mut Unstructured,
    depth: usize,
    max_depth: usize,
) -> arbitrary::Result<Value> {
    let mut fields = Map::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let field = word(u, FIELDS)?;
        let value = if field == "$and" || field == "$or" {
            if depth > max_depth + 1 {
                continue;
            }
            let len = u.int_in_range(0..=2)?;
            let items = (0..len)
                .map(|_| structured_filter(u, depth + 1, max_depth))
                .collect::<arbitrary::Result<Vec<_>>>()?;
            Value::Array(items)
        } else if u.arbitrary()? {
            let mut operators = Map::new();
            for _ in 0..u.int_in_range(1..=2)? {
                operators.insert(word(u, OPERATORS)?, field_value(u, 1)?);
            }
            Value::Object(operators)
        } else {
            field_value(u, MAX_JSON_DEPTH - 3)?
        };
        fields.insert(field, value);
    }
    Ok(Value::Object(fields))
}

fn structured_sort(u: &mut Unstructured) -> arbitrary::Result<Vec<SortField>> {
    (0..u.int_in_range(0..=3)?)
        .map(|_| {
            Ok(SortField {
                path: word(u, FIELDS)?,
                descending: u.arbitrary()?,
            })
        })
        .collect()
}

/// Returns the filter that matches exactly the rooms `filter` does not, when
/// every comparison in it has an exact negation.
fn negate(filter: &Filter) -> Option<Filter> {
    let negated = match filter {
        Filter::And(parts) => Filter::Or(parts.iter().map(negate).collect::<Option<_>>()?),
        Filter::Or(parts) => Filter::And(parts.iter().map(negate).collect::<Option<_>>()?),
        Filter::Compare { field, op, operand } => {
            let op = match op {
                CompareOp::Eq => CompareOp::Ne,
                CompareOp::Ne => CompareOp::Eq,
                CompareOp::In => CompareOp::Nin,
                CompareOp::Nin => CompareOp::In,
                _ => return None,
            };
            Filter::Compare {
                field: field.clone(),
                op,
                operand: operand.clone(),
            }
        }
    };
    Some(negated)
}

/// Returns `limits` with one more nesting level and room for the filter
/// twice, so that `{"$and": [f, f]}` parses whenever `f` does.
/// NOTE: at the depth ceiling the wrappers fail, and their checks are skipped.
fn wrapper_limits(limits: &Limits) -> Limits {
    Limits {
        max_filter_depth: (limits.max_filter_depth + 1).min(MAX_FILTER_DEPTH),
        max_filter_nodes: 2 * limits.max_filter_nodes + 2,
        ..limits.clone()
    }
}

fn check_filter(value: &Value, definition: &RoomDefinition, limits: &Limits, rooms: &[Room]) {
    let parsed = Filter::from_value(value, definition, limits);
    assert_eq!(
        Filter::parse(&value.to_string(), definition, limits),
        parsed
    );
    let filter = match parsed {
        Ok(filter) => filter,
        Err(error) => {
            assert!(matches!(error, RoomError::Validation { .. }), "{error:?}");
            return;
        }
    };

    let wrapper = wrapper_limits(limits);
    let and = Filter::from_value(&json!({"$and": [value, value]}), definition, &wrapper);
    let or = Filter::from_value(&json!({"$or": [value]}), definition, &wrapper);
    let negated = negate(&filter);
    for room in rooms {
        let matched = filter.matches(room);
        if let Ok(and) = &and {
            assert_eq!(and.matches(room), matched, "$and of the filter with itself");
        }
        if let Ok(or) = &or {
            assert_eq!(or.matches(room), matched, "$or of the filter alone");
        }
        if let Some(negated) = &negated {
            assert_eq!(negated.matches(room), !matched, "negation of {filter:?}");
        }
    }
}

fn check_sort(fields: &[SortField], definition: &RoomDefinition, rooms: &[Room]) {
    let Ok(order) = SortOrder::new(fields, definition) else {
        return;
    };
    for a in rooms {
        assert_eq!(order.compare(a, a), Ordering::Equal);
        for b in rooms {
            assert_eq!(order.compare(a, b), order.compare(b, a).reverse());
            for c in rooms {
                if order.compare(a, b) != Ordering::Greater
                    && order.compare(b, c) != Ordering::Greater
                {
                    assert_ne!(
                        order.compare(a, c),
                        Ordering::Greater,
                        "sort order is not transitive"
                    );
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let definition = definition();
    let limits = limits();
    let rooms = rooms();
    if let Some(text) = text_mode(data) {
        match Filter::parse(text, &definition, &limits) {
            Ok(filter) => {
                for room in &rooms {
                    filter.matches(room);
                }
            }
            Err(error) => assert!(matches!(error, RoomError::Validation { .. }), "{error:?}"),
        }
        return;
    }
    let mut u = Unstructured::new(data.get(1..).unwrap_or_default());
    if let Ok(value) = structured_filter(&mut u, 0, limits.max_filter_depth) {
        check_filter(&value, &definition, &limits, &rooms);
    }
    if let Ok(fields) = structured_sort(&mut u) {
        check_sort(&fields, &definition, &rooms);
    }
});
