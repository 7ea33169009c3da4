//! The summary a run prints: requests by kind and outcome, faults by kind,
//! what the watchers saw, and every violation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::checker::Violation;
use crate::history::{Entry, FaultKind};

/// Most violations printed; the history has them all.
const PRINTED_VIOLATIONS: usize = 50;

pub fn summary(entries: &[Entry], violations: &[Violation]) -> String {
    let mut requests: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut faults: BTreeMap<FaultKind, usize> = BTreeMap::new();
    let (mut watches, mut watched_events, mut streams, mut rooms) = (0, 0, 0, 0);
    for entry in entries {
        match entry {
            Entry::Request(request) => {
                let outcome = request.outcome.label();
                *outcomes.entry(outcome.clone()).or_default() += 1;
                *requests
                    .entry(request.op.name())
                    .or_default()
                    .entry(outcome)
                    .or_default() += 1;
            }
            Entry::Fault(fault) => *faults.entry(fault.kind).or_default() += 1,
            Entry::Watch(watch) => {
                watches += 1;
                watched_events += watch.events.len();
                streams += watch.streams as usize;
            }
            Entry::Final(_) => rooms += 1,
            Entry::Run(_) => {}
        }
    }

    let mut out = String::new();
    let total: usize = outcomes.values().sum();
    let _ = writeln!(out, "requests: {total}");
    for (outcome, count) in &outcomes {
        let _ = writeln!(out, "  {outcome:<28} {count:>8}");
    }
    let _ = writeln!(out, "requests by kind:");
    for (op, by_outcome) in &requests {
        let listed: Vec<String> = by_outcome.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let _ = writeln!(out, "  {op:<13} {}", listed.join(", "));
    }
    let _ = writeln!(out, "faults: {}", faults.values().sum::<usize>());
    for kind in FaultKind::ALL {
        let _ = writeln!(
            out,
            "  {:<28} {:>8}",
            kind.name(),
            faults.get(&kind).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "watches: {watches} ({watched_events} events over {streams} streams)"
    );
    let _ = writeln!(out, "rooms checked: {rooms}");
    let _ = writeln!(out, "violations: {}", violations.len());
    for violation in violations.iter().take(PRINTED_VIOLATIONS) {
        let _ = writeln!(out, "  {violation}");
    }
    if violations.len() > PRINTED_VIOLATIONS {
        let _ = writeln!(
            out,
            "  ... and {} more",
            violations.len() - PRINTED_VIOLATIONS
        );
    }
    out
}
