//! The org quota rule: at no moment were more rooms of the limited org open
//! than its `maxOpenRooms`.
//!
//! Rooms are counted only while they were certainly open: from the end of
//! the create that acknowledged them (or a second after their
//! `room.created` event, when no create was acknowledged) until their
//! `room.closed` event. A deleted room has no log left, so it counts until
//! the earliest moment it may have closed: the start of a delete or close
//! that may have been applied, or its shortest timer. Timestamps from different rooms are not ordered exactly,
//! so this errs towards counting fewer rooms, never more.

use chrono::TimeDelta;

use super::{History, Rule, Violation};
use crate::history::{Op, Outcome, RequestRecord, Time};

/// How long after its `room.created` timestamp a room is surely committed.
const COMMIT_SLACK: TimeDelta = TimeDelta::seconds(1);
/// Most rooms a violation lists.
const LISTED_ROOMS: usize = 10;

pub(crate) fn check(history: &History<'_>, violations: &mut Vec<Violation>) {
    let limit = history.run.max_open_rooms as usize;
    let mut changes: Vec<(Time, bool, &str)> = Vec::new();
    for (room, start, end) in open_intervals(history) {
        changes.push((start, true, room));
        changes.push((end, false, room));
    }
    // Closes before opens at the same instant.
    changes.sort_by_key(|&(at, opens, _)| (at, opens));

    let mut open: Vec<&str> = Vec::new();
    for (at, opens, room) in changes {
        if !opens {
            open.retain(|&other| other != room);
            continue;
        }
        open.push(room);
        if open.len() > limit {
            let listed: Vec<&str> = open.iter().take(LISTED_ROOMS).copied().collect();
            violations.push(Violation {
                rule: Rule::MaxOpenRooms,
                room: Some(room.to_owned()),
                requests: Vec::new(),
                message: format!(
                    "{} rooms of org {} open at {at}, over its maxOpenRooms of {limit}; among them {listed:?}",
                    open.len(),
                    history.run.limited_org
                ),
            });
            return;
        }
    }
}

/// Returns the time each room of the limited org was certainly open.
fn open_intervals<'a>(history: &History<'a>) -> Vec<(&'a str, Time, Time)> {
    let mut intervals = Vec::new();
    for (&room, requests) in &history.requests_by_room {
        let in_org = requests
            .iter()
            .any(|request| request.org == history.run.limited_org);
        if !in_org {
            continue;
        }
        let log = history
            .finals
            .get(room)
            .map(|room| room.events.as_slice())
            .unwrap_or_default();

        let acknowledged = requests
            .iter()
            .filter(|request| {
                matches!(request.op, Op::Create { .. }) && request.outcome == Outcome::Ok
            })
            .map(|request| request.end)
            .min();
        let logged = log
            .iter()
            .find(|event| event.name == "room.created")
            .map(|event| event.at + COMMIT_SLACK);
        let Some(start) = acknowledged.or(logged) else {
            continue;
        };

        let closed = log
            .iter()
            .find(|event| event.name == "room.closed")
            .map(|event| event.at);
        let end = closed
            .or_else(|| earliest_close(requests))
            .unwrap_or(history.run.finished);
        if start < end {
            intervals.push((room, start, end));
        }
    }
    intervals
}

/// Returns the earliest moment a room without a log may have closed.
fn earliest_close(requests: &[&RequestRecord]) -> Option<Time> {
    let by_request = requests
        .iter()
        .filter(|request| {
            matches!(request.op, Op::Delete | Op::Close) && request.outcome.maybe_applied()
        })
        .map(|request| request.start);
    let by_timer = requests.iter().filter_map(|request| match request.op {
        Op::Create {
            unused_timeout,
            empty_timeout,
            max_duration,
            ..
        } => {
            let shortest = unused_timeout
                .min(empty_timeout)
                .min(max_duration.unwrap_or(u32::MAX));
            Some(request.start + TimeDelta::seconds(i64::from(shortest)))
        }
        _ => None,
    });
    by_request.chain(by_timer).min()
}
