//! Checks a chaos run's history against the invariants of roomd's design:
//! each rule reads the recorded requests, faults, watches and final room
//! states, and reports every breach as a [`Violation`] naming the room and
//! the requests involved.

mod acknowledged;
mod quota;
mod replay;
mod room_log;
mod timers;
mod watchers;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::history::{Entry, FaultRecord, FinalRoom, RequestRecord, RunInfo, WatchRecord};

/// The invariant a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An acknowledged change is missing from the final state or the log.
    AcknowledgedChange,
    /// An event's epoch is lower than an earlier one's: a fenced owner wrote.
    FencedWrite,
    /// A closed room was seen new or open again.
    Reopened,
    /// The log is not a path of the room state machine.
    StatePath,
    /// A timer fired after its deadline plus the failover bound, or never.
    LateTimer,
    /// A timer fired before its deadline.
    EarlyTimer,
    /// The event log has a gap or a duplicate.
    LogGap,
    /// A watcher saw a gap, a duplicate, or an event the log does not have.
    WatchGap,
    /// More participants were connected than `maxParticipants`.
    MaxParticipants,
    /// More rooms of the org were open than `maxOpenRooms`.
    MaxOpenRooms,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::AcknowledgedChange => "acknowledged_change",
            Rule::FencedWrite => "fenced_write",
            Rule::Reopened => "reopened",
            Rule::StatePath => "state_path",
            Rule::LateTimer => "late_timer",
            Rule::EarlyTimer => "early_timer",
            Rule::LogGap => "log_gap",
            Rule::WatchGap => "watch_gap",
            Rule::MaxParticipants => "max_participants",
            Rule::MaxOpenRooms => "max_open_rooms",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub rule: Rule,
    pub room: Option<String>,
    /// Ids of the requests involved, as in the history.
    pub requests: Vec<u64>,
    pub message: String,
}

impl Violation {
    fn new(rule: Rule, room: &str, message: impl Into<String>) -> Self {
        Violation {
            rule,
            room: Some(room.to_owned()),
            requests: Vec::new(),
            message: message.into(),
        }
    }

    fn with_requests(mut self, requests: impl IntoIterator<Item = u64>) -> Self {
        self.requests.extend(requests);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule.name())?;
        if let Some(room) = &self.room {
            write!(f, " room={room}")?;
        }
        if !self.requests.is_empty() {
            let ids: Vec<String> = self.requests.iter().map(ToString::to_string).collect();
            write!(f, " requests={}", ids.join(","))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The history, indexed for the rules.
pub(crate) struct History<'a> {
    pub run: &'a RunInfo,
    pub requests: Vec<&'a RequestRecord>,
    pub requests_by_room: BTreeMap<&'a str, Vec<&'a RequestRecord>>,
    pub faults: Vec<&'a FaultRecord>,
    pub watches: Vec<&'a WatchRecord>,
    pub finals: BTreeMap<&'a str, &'a FinalRoom>,
}

impl<'a> History<'a> {
    fn index(entries: &'a [Entry]) -> Result<Self, String> {
        let run = entries
            .iter()
            .find_map(|entry| match entry {
                Entry::Run(run) => Some(run),
                _ => None,
            })
            .ok_or("the history has no run entry")?;
        let mut history = History {
            run,
            requests: Vec::new(),
            requests_by_room: BTreeMap::new(),
            faults: Vec::new(),
            watches: Vec::new(),
            finals: BTreeMap::new(),
        };
        for entry in entries {
            match entry {
                Entry::Run(_) => {}
                Entry::Request(request) => {
                    history.requests.push(request);
                    let room = request
                        .room
                        .as_deref()
                        .or(request.result.as_ref().map(|room| room.id.as_str()));
                    if let Some(room) = room {
                        history
                            .requests_by_room
                            .entry(room)
                            .or_default()
                            .push(request);
                    }
                }
                Entry::Fault(fault) => history.faults.push(fault),
                Entry::Watch(watch) => history.watches.push(watch),
                Entry::Final(room) => {
                    history.finals.insert(room.room.as_str(), room);
                }
            }
        }
        history.require_final_states()?;
        Ok(history)
    }

    /// Fails when a room that a request or a watch names has no final state.
    /// A run reads one for each such room, deleted rooms included, so a
    /// missing one means the history file is incomplete.
    fn require_final_states(&self) -> Result<(), String> {
        let named = self
            .requests_by_room
            .keys()
            .copied()
            .chain(self.watches.iter().map(|watch| watch.room.as_str()));
        let missing: BTreeSet<&str> = named
            .filter(|room| !self.finals.contains_key(room))
            .collect();

        match missing.first() {
            None => Ok(()),
            Some(room) => Err(format!(
                "the history has no final state for {} room(s), {room} among them, \
                 so the file is incomplete (cut short or edited)",
                missing.len()
            )),
        }
    }
}

/// Checks every rule and returns the violations, ordered by rule and room.
/// Fails when the history lacks its run entry or the final state of a room
/// it names.
pub fn check(entries: &[Entry]) -> Result<Vec<Violation>, String> {
    let history = History::index(entries)?;
    let mut violations = Vec::new();
    for room in history.finals.values() {
        let replayed = replay::replay(room, &mut violations);
        room_log::check(room, &replayed, &mut violations);
        timers::check(&history, room, &mut violations);
        acknowledged::check(&history, room, &replayed, &mut violations);
    }
    acknowledged::check_deleted(&history, &mut violations);
    acknowledged::check_reopened(&history, &mut violations);
    watchers::check(&history, &mut violations);
    quota::check(&history, &mut violations);
    violations.sort_by(|a, b| (a.rule, &a.room).cmp(&(b.rule, &b.room)));
    Ok(violations)
}
