//! The timer rule: a room closes by a timer no earlier than the timer's
//! deadline and no later than the deadline plus the allowance, and no
//! timer stays overdue past its allowance.
//!
//! The allowance is the run's failover bound, stretched by every Redis
//! outage that overlaps it: while Redis is down no node can commit the
//! close.

use chrono::TimeDelta;

use super::{History, Rule, Violation};
use crate::history::{FaultKind, FinalRoom, LogEvent, Time};

/// Slack for timestamps rounded on their way through the store.
const CLOCK_SLACK: TimeDelta = TimeDelta::milliseconds(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Unused,
    Empty,
    MaxDuration,
}

impl Timer {
    fn reason(self) -> &'static str {
        match self {
            Timer::Unused => "unused_timeout",
            Timer::Empty => "empty_timeout",
            Timer::MaxDuration => "max_duration",
        }
    }
}

/// The deadlines armed while a room's log replays.
#[derive(Default)]
struct Armed {
    unused: Option<Time>,
    empty: Option<Time>,
    max_duration: Option<Time>,
}

impl Armed {
    fn deadline(&self, timer: Timer) -> Option<Time> {
        match timer {
            Timer::Unused => self.unused,
            Timer::Empty => self.empty,
            Timer::MaxDuration => self.max_duration,
        }
    }

    /// Returns the earliest armed deadline.
    fn next(&self) -> Option<(Timer, Time)> {
        [Timer::Unused, Timer::Empty, Timer::MaxDuration]
            .into_iter()
            .filter_map(|timer| Some((timer, self.deadline(timer)?)))
            .min_by_key(|(_, deadline)| *deadline)
    }
}

pub(crate) fn check(history: &History<'_>, room: &FinalRoom, violations: &mut Vec<Violation>) {
    let mut armed = Armed::default();
    let mut connected = 0usize;
    let mut ever_joined = false;

    for event in &room.events {
        // Whatever this event is, the earliest armed timer should have
        // fired before it if its allowance ran out first.
        if let Some((timer, deadline)) = armed.next()
            && allowed_until(history, deadline) < event.at
        {
            violations.push(late(
                room,
                timer,
                deadline,
                &format!("at seq {} ({}, {})", event.seq, event.name, event.at),
            ));
            return;
        }

        match event.name.as_str() {
            "room.opened" => {
                armed.unused = Some(after(event, room.unused_timeout));
                armed.max_duration = room.max_duration.map(|secs| after(event, secs));
            }
            "participant.joined" => {
                connected += 1;
                ever_joined = true;
                armed.unused = None;
                armed.empty = None;
            }
            "participant.left" if event.reason.is_empty() => {
                connected = connected.saturating_sub(1);
                if connected == 0 && ever_joined {
                    armed.empty = Some(after(event, room.empty_timeout));
                }
            }
            "room.closed" => {
                check_close(room, &armed, event, violations);
                return;
            }
            _ => {}
        }
    }

    if let Some((timer, deadline)) = armed.next()
        && allowed_until(history, deadline) < history.run.finished
    {
        violations.push(late(room, timer, deadline, "never, by the end of the run"));
    }
}

fn check_close(room: &FinalRoom, armed: &Armed, close: &LogEvent, violations: &mut Vec<Violation>) {
    let fired = [Timer::Unused, Timer::Empty, Timer::MaxDuration]
        .into_iter()
        .find(|timer| timer.reason() == close.reason);
    let Some(timer) = fired else {
        return;
    };
    match armed.deadline(timer) {
        None => violations.push(Violation::new(
            Rule::EarlyTimer,
            &room.room,
            format!(
                "closed with {} at {}, but that timer was not armed",
                close.reason, close.at
            ),
        )),
        Some(deadline) if close.at + CLOCK_SLACK < deadline => violations.push(Violation::new(
            Rule::EarlyTimer,
            &room.room,
            format!(
                "closed with {} at {}, before its deadline {deadline}",
                close.reason, close.at
            ),
        )),
        Some(_) => {}
    }
}

fn after(event: &LogEvent, secs: u32) -> Time {
    event.at + TimeDelta::seconds(i64::from(secs))
}

fn late(room: &FinalRoom, timer: Timer, deadline: Time, fired: &str) -> Violation {
    Violation::new(
        Rule::LateTimer,
        &room.room,
        format!(
            "the {} timer was due at {deadline} and fired {fired}",
            timer.reason()
        ),
    )
}

/// Returns the deadline plus the failover bound, plus every Redis outage
/// that overlaps that window.
fn allowed_until(history: &History<'_>, deadline: Time) -> Time {
    let mut until = deadline
        + TimeDelta::milliseconds(i64::try_from(history.run.failover_bound_ms).unwrap_or(i64::MAX));
    let mut outages: Vec<(Time, Time)> = history
        .faults
        .iter()
        .filter(|fault| fault.kind == FaultKind::RestartRedis)
        .map(|fault| (fault.start, fault.end))
        .collect();
    outages.sort();
    for (start, end) in outages {
        if start <= until && end >= deadline {
            until += end - start.max(deadline);
        }
    }
    until
}
