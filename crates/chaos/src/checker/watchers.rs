//! The watch rule: each watcher saw consecutive seqs from where it started,
//! across its reconnections, and each event it saw is the log's event at
//! that seq.

use super::{History, Rule, Violation};

pub(crate) fn check(history: &History<'_>, violations: &mut Vec<Violation>) {
    for watch in &history.watches {
        let log = history
            .finals
            .get(watch.room.as_str())
            .filter(|room| room.snapshot.is_some())
            .map(|room| room.events.as_slice());
        for (expected, event) in (watch.from_seq.max(1)..).zip(&watch.events) {
            if event.seq != expected {
                violations.push(Violation::new(
                    Rule::WatchGap,
                    &watch.room,
                    format!(
                        "watcher {} expected seq {expected} and got seq {} after {} stream(s)",
                        watch.watcher, event.seq, watch.streams
                    ),
                ));
                break;
            }

            let logged = log.and_then(|log| log.iter().find(|logged| logged.seq == event.seq));
            if let (Some(log), None) = (log, logged) {
                violations.push(Violation::new(
                    Rule::WatchGap,
                    &watch.room,
                    format!(
                        "watcher {} saw seq {} ({}), beyond the log's {} events",
                        watch.watcher,
                        event.seq,
                        event.name,
                        log.len()
                    ),
                ));
                break;
            }
            if let Some(logged) = logged
                && (logged.name != event.name
                    || logged.version != event.version
                    || logged.epoch != event.epoch)
            {
                violations.push(Violation::new(
                    Rule::WatchGap,
                    &watch.room,
                    format!(
                        "watcher {} saw seq {} as {} v{} epoch {}, the log has {} v{} epoch {}",
                        watch.watcher,
                        event.seq,
                        event.name,
                        event.version,
                        event.epoch,
                        logged.name,
                        logged.version,
                        logged.epoch
                    ),
                ));
                break;
            }
        }
    }
}
