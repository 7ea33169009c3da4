//! Prometheus metrics: an exporter on its own HTTP port, and the help text
//! of every metric roomd records.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `roomd_rooms_created_total` | counter | |
//! | `roomd_room_changes_total` | counter | `command` |
//! | `roomd_room_timers_fired_total` | counter | `timer` |
//! | `roomd_room_actors` | gauge | |
//! | `roomd_room_actor_failures_total` | counter | |
//! | `roomd_store_commit_failures_total` | counter | |
//! | `roomd_faults_total` | counter | `reason` |

use std::net::SocketAddr;

use metrics::{describe_counter, describe_gauge};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};

/// Installs the global metrics recorder and serves `/metrics` on `address`.
/// Must run inside a tokio runtime.
pub fn serve(address: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!("roomd_rooms_created_total", "Rooms created on this node.");
    describe_counter!(
        "roomd_room_changes_total",
        "Changes committed by clients' requests, by command."
    );
    describe_counter!(
        "roomd_room_timers_fired_total",
        "Room timers that fired and committed a change, by timer."
    );
    describe_gauge!("roomd_room_actors", "Room actors running on this node.");
    describe_counter!(
        "roomd_room_actor_failures_total",
        "Room actors that exited abnormally (panic, error or kill)."
    );
    describe_counter!(
        "roomd_store_commit_failures_total",
        "Commits the store rejected or could not confirm."
    );
    describe_counter!(
        "roomd_faults_total",
        "Faults returned to clients, by reason."
    );
}
