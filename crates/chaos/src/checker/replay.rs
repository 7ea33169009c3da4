//! Replays a room's event log through the room state machine, giving the
//! state after each event, and reports each step the machine does not
//! allow.

use std::collections::BTreeSet;

use super::{Rule, Violation};
use crate::history::{FinalRoom, LogEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    New,
    Open,
    Closed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::New => "new",
            State::Open => "open",
            State::Closed => "closed",
        }
    }
}

/// The room after one event of its log.
#[derive(Debug, Clone)]
pub(crate) struct Step<'a> {
    pub event: &'a LogEvent,
    pub state: State,
    pub connected: BTreeSet<&'a str>,
}

/// The steps of a room's log, in log order.
pub(crate) struct Replayed<'a> {
    pub steps: Vec<Step<'a>>,
}

impl<'a> Replayed<'a> {
    /// Returns the step of the event with `seq`.
    pub fn at_seq(&self, seq: u64) -> Option<&Step<'a>> {
        self.steps.iter().find(|step| step.event.seq == seq)
    }

    pub fn last(&self) -> Option<&Step<'a>> {
        self.steps.last()
    }
}

pub(crate) fn replay<'a>(room: &'a FinalRoom, violations: &mut Vec<Violation>) -> Replayed<'a> {
    let mut steps: Vec<Step<'a>> = Vec::with_capacity(room.events.len());
    let mut state = State::New;
    let mut connected = BTreeSet::new();

    for (index, event) in room.events.iter().enumerate() {
        let problem = apply(index, event, &mut state, &mut connected);
        if let Some((rule, message)) = problem {
            violations.push(Violation::new(
                rule,
                &room.room,
                format!("event seq {} ({}): {message}", event.seq, event.name),
            ));
        }
        steps.push(Step {
            event,
            state,
            connected: connected.clone(),
        });
    }
    Replayed { steps }
}

/// Applies one event; returns what was wrong with it, if anything.
fn apply<'a>(
    index: usize,
    event: &'a LogEvent,
    state: &mut State,
    connected: &mut BTreeSet<&'a str>,
) -> Option<(Rule, String)> {
    if *state == State::Closed {
        return Some((Rule::Reopened, "follows room.closed".into()));
    }
    if index == 0 && event.name != "room.created" {
        return Some((
            Rule::StatePath,
            "the log does not start with room.created".into(),
        ));
    }
    match event.name.as_str() {
        "room.created" if index != 0 => Some((Rule::StatePath, "a second room.created".into())),
        "room.created" => None,
        "room.opened" if *state != State::New => Some((
            Rule::StatePath,
            format!("opens a room that is {}", state.name()),
        )),
        "room.opened" => {
            *state = State::Open;
            None
        }
        "participant.joined" if *state != State::Open => Some((
            Rule::StatePath,
            format!("a join while the room is {}", state.name()),
        )),
        "participant.joined" if !connected.insert(event.account.as_str()) => Some((
            Rule::StatePath,
            format!("{} joins while connected", event.account),
        )),
        "participant.left" if !connected.remove(event.account.as_str()) => Some((
            Rule::StatePath,
            format!("{} leaves while not connected", event.account),
        )),
        "room.closed" => {
            *state = State::Closed;
            (!connected.is_empty()).then(|| {
                (
                    Rule::StatePath,
                    format!("closes with {} still connected", connected.len()),
                )
            })
        }
        "participant.joined" | "participant.left" | "room.updated" | "room.aclChanged" => None,
        other => Some((Rule::StatePath, format!("unknown event name {other:?}"))),
    }
}
