//! Rules on acknowledged requests: each one's effect is in the log at the
//! point its response names, acknowledged deletes removed their room, no
//! room vanished without a delete, and no room was seen open after a
//! response saw it closed.

use std::collections::BTreeMap;

use super::replay::{Replayed, State};
use super::{History, Rule, Violation};
use crate::history::{FinalRoom, Op, Outcome, RequestRecord, RoomSnapshot, Time};

pub(crate) fn check(
    history: &History<'_>,
    room: &FinalRoom,
    replayed: &Replayed<'_>,
    violations: &mut Vec<Violation>,
) {
    if room.snapshot.is_none() {
        return;
    }
    let requests = history
        .requests_by_room
        .get(room.room.as_str())
        .map_or(&[][..], Vec::as_slice);
    for request in requests {
        if let (Outcome::Ok, Some(snapshot)) = (&request.outcome, &request.result)
            && let Err(message) = matches_log(request, snapshot, replayed)
        {
            violations.push(
                Violation::new(Rule::AcknowledgedChange, &room.room, message)
                    .with_requests([request.id]),
            );
        }
    }
}

/// Compares an acknowledged response with the log at the seq it names.
fn matches_log(
    request: &RequestRecord,
    snapshot: &RoomSnapshot,
    replayed: &Replayed<'_>,
) -> Result<(), String> {
    let what = request.op.name();
    let Some(step) = replayed.at_seq(snapshot.last_seq) else {
        return Err(format!(
            "{what} was acknowledged at seq {}, which the log does not have",
            snapshot.last_seq
        ));
    };
    let connected: Vec<&str> = step.connected.iter().copied().collect();
    if step.event.version != snapshot.version
        || step.state.name() != snapshot.state
        || connected != snapshot.connected
    {
        return Err(format!(
            "{what} was acknowledged as {} at version {} with {:?} connected, but after seq {} the log has {} at version {} with {:?}",
            snapshot.state,
            snapshot.version,
            snapshot.connected,
            snapshot.last_seq,
            step.state.name(),
            step.event.version,
            connected
        ));
    }
    let effect_missing = match &request.op {
        Op::Join { account } => !step.connected.contains(account.as_str()),
        Op::Leave { account } => step.connected.contains(account.as_str()),
        Op::Close => step.state != State::Closed,
        _ => false,
    };
    if effect_missing {
        return Err(format!(
            "{what} was acknowledged, but the log at seq {} does not show its effect",
            snapshot.last_seq
        ));
    }
    Ok(())
}

/// Checks that an acknowledged delete left no room behind, and that a room
/// is gone only after a delete that may have been applied.
pub(crate) fn check_deleted(history: &History<'_>, violations: &mut Vec<Violation>) {
    for (&room, requests) in &history.requests_by_room {
        let Some(last) = history.finals.get(room) else {
            continue;
        };
        let deletes: Vec<&&RequestRecord> = requests
            .iter()
            .filter(|request| matches!(request.op, Op::Delete))
            .collect();
        let acknowledged: Vec<u64> = deletes
            .iter()
            .filter(|request| request.outcome == Outcome::Ok)
            .map(|request| request.id)
            .collect();
        match &last.snapshot {
            Some(_) if !acknowledged.is_empty() => violations.push(
                Violation::new(
                    Rule::AcknowledgedChange,
                    room,
                    "the room was deleted with an acknowledgement, but it still exists",
                )
                .with_requests(acknowledged),
            ),
            None if !deletes
                .iter()
                .any(|request| request.outcome.maybe_applied()) =>
            {
                violations.push(Violation::new(
                    Rule::AcknowledgedChange,
                    room,
                    "the room is gone, but no delete of it may have been applied",
                ));
            }
            _ => {}
        }
    }
}

/// Once a response showed a room closed, no request that started after it
/// may see the room new or open.
pub(crate) fn check_reopened(history: &History<'_>, violations: &mut Vec<Violation>) {
    for (&room, requests) in &history.requests_by_room {
        let mut seen: Vec<(&RequestRecord, &RoomSnapshot)> = requests
            .iter()
            .filter(|request| request.outcome == Outcome::Ok)
            .filter_map(|request| Some((*request, request.result.as_ref()?)))
            .collect();
        seen.sort_by_key(|(request, _)| request.start);

        let mut first_closed: Option<(Time, u64)> = None;
        let mut reported = BTreeMap::new();
        for (request, snapshot) in seen {
            if let Some((closed_at, closer)) = first_closed
                && request.start > closed_at
                && snapshot.state != "closed"
            {
                reported
                    .entry(closer)
                    .or_insert((request.id, snapshot.state.clone()));
            }
            if snapshot.state == "closed"
                && first_closed.is_none_or(|(closed_at, _)| request.end < closed_at)
            {
                first_closed = Some((request.end, request.id));
            }
        }
        for (closer, (later, state)) in reported {
            violations.push(
                Violation::new(
                    Rule::Reopened,
                    room,
                    format!("request {closer} saw the room closed; request {later}, started after, saw it {state}"),
                )
                .with_requests([closer, later]),
            );
        }
    }
}
