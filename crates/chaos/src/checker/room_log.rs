//! Rules on one room's event log: gapless and duplicate-free, epochs that
//! never go back, `maxParticipants` at every step, and a final state that
//! matches the log.

use super::replay::Replayed;
use super::{Rule, Violation};
use crate::history::FinalRoom;

pub(crate) fn check(room: &FinalRoom, replayed: &Replayed<'_>, violations: &mut Vec<Violation>) {
    check_gapless(room, violations);
    check_epochs(room, violations);
    check_max_participants(room, replayed, violations);
    check_final_state(room, replayed, violations);
}

fn check_gapless(room: &FinalRoom, violations: &mut Vec<Violation>) {
    for (index, event) in room.events.iter().enumerate() {
        let expected = index as u64 + 1;
        if event.seq != expected {
            violations.push(Violation::new(
                Rule::LogGap,
                &room.room,
                format!(
                    "event {} of the log has seq {}, expected {expected}",
                    index + 1,
                    event.seq
                ),
            ));
            return;
        }
    }
    if let Some(snapshot) = &room.snapshot
        && snapshot.last_seq != room.events.len() as u64
    {
        violations.push(Violation::new(
            Rule::LogGap,
            &room.room,
            format!(
                "the room's lastSeq is {}, but its log holds {} events",
                snapshot.last_seq,
                room.events.len()
            ),
        ));
    }
}

fn check_epochs(room: &FinalRoom, violations: &mut Vec<Violation>) {
    for pair in room.events.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if after.epoch < before.epoch {
            violations.push(Violation::new(
                Rule::FencedWrite,
                &room.room,
                format!(
                    "seq {} was written at epoch {} after seq {} at epoch {}: a stale owner wrote",
                    after.seq, after.epoch, before.seq, before.epoch
                ),
            ));
        }
        if after.version < before.version {
            violations.push(Violation::new(
                Rule::FencedWrite,
                &room.room,
                format!(
                    "seq {} has version {} after version {}",
                    after.seq, after.version, before.version
                ),
            ));
        }
    }
}

fn check_max_participants(
    room: &FinalRoom,
    replayed: &Replayed<'_>,
    violations: &mut Vec<Violation>,
) {
    let over = replayed
        .steps
        .iter()
        .find(|step| step.connected.len() > room.max_participants as usize);
    if let Some(step) = over {
        violations.push(Violation::new(
            Rule::MaxParticipants,
            &room.room,
            format!(
                "{} connected after seq {} ({:?}); maxParticipants is {}",
                step.connected.len(),
                step.event.seq,
                step.connected,
                room.max_participants
            ),
        ));
    }
}

fn check_final_state(room: &FinalRoom, replayed: &Replayed<'_>, violations: &mut Vec<Violation>) {
    let (Some(snapshot), Some(last)) = (&room.snapshot, replayed.last()) else {
        return;
    };
    let connected: Vec<&str> = last.connected.iter().copied().collect();
    if snapshot.state != last.state.name()
        || snapshot.version != last.event.version
        || snapshot.connected != connected
    {
        violations.push(Violation::new(
            Rule::AcknowledgedChange,
            &room.room,
            format!(
                "the final room is {} at version {} with {:?} connected, but its log ends {} at version {} with {:?}",
                snapshot.state,
                snapshot.version,
                snapshot.connected,
                last.state.name(),
                last.event.version,
                connected
            ),
        ));
    }
}
