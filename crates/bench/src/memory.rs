//! The `memory` benchmark: resident memory per open room.
//!
//! Rooms are created straight through [`RoomService::create`] in this
//! process, with no gRPC, so client and transport buffers do not count. The
//! figure is the growth of this process's VmRSS divided by the number of
//! rooms, and so covers each room's actor, its timer task, the in-memory
//! store's copy of the room and its event log, and the registry's entries.

use std::sync::Arc;
use std::time::Duration;

use roomd_actors::{RoomService, ServiceConfig, SingleNode, SystemClock};
use roomd_store::MemoryStore;
use tokio::time::Instant;

use crate::cli::MemoryArgs;
use crate::report::{MemoryReport, Target};
use crate::rooms;

/// Resident memory per open room that the benchmark is expected to stay
/// within, in KiB.
pub const KIB_PER_ROOM_TARGET: f64 = 16.0;

/// How long the room actors may take to start after their creates returned.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: &MemoryArgs) -> Result<MemoryReport, String> {
    let store = Arc::new(MemoryStore::new());
    let service = RoomService::start(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(SingleNode::new()),
        ServiceConfig::default(),
    )
    .await
    .map_err(|e| format!("cannot start the room service: {e}"))?;

    rooms::create_many(&service, args.warmup_rooms, args.concurrency).await?;
    wait_for_live_rooms(&service, args.warmup_rooms as usize).await?;
    let before = read_status()?;

    let started = Instant::now();
    rooms::create_many(&service, args.rooms, args.concurrency).await?;
    let create_time = started.elapsed();
    let expected = (args.warmup_rooms + args.rooms) as usize;
    wait_for_live_rooms(&service, expected).await?;
    let after = read_status()?;

    let grown_kib = after.rss_kib.saturating_sub(before.rss_kib);
    let kib_per_room = grown_kib as f64 / f64::from(args.rooms);
    let report = MemoryReport {
        rooms: args.rooms,
        warmup_rooms: args.warmup_rooms,
        concurrency: args.concurrency,
        live_rooms: service.live_rooms(),
        stored_rooms: store.room_count(),
        create_seconds: create_time.as_secs_f64(),
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        rss_peak_kib: after.peak_kib,
        kib_per_room: Target::at_most(kib_per_room, KIB_PER_ROOM_TARGET),
    };
    service.shutdown().await;
    Ok(report)
}

/// Waits until `count` room actors are registered as live.
async fn wait_for_live_rooms(service: &RoomService, count: usize) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while service.live_rooms() < count {
        if Instant::now() >= deadline {
            return Err(format!(
                "only {} of {count} room actors were live after {} s",
                service.live_rooms(),
                SETTLE_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

struct MemoryStatus {
    rss_kib: u64,
    peak_kib: u64,
}

/// Reads VmRSS and VmHWM (peak resident memory) of this process from
/// `/proc/self/status`. The kernel reports both in KiB under the unit "kB".
fn read_status() -> Result<MemoryStatus, String> {
    let path = "/proc/self/status";
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(MemoryStatus {
        rss_kib: status_field(&text, "VmRSS:")
            .ok_or_else(|| format!("{path} has no VmRSS line"))?,
        peak_kib: status_field(&text, "VmHWM:")
            .ok_or_else(|| format!("{path} has no VmHWM line"))?,
    })
}

fn status_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let text = "Name:\troomd-bench\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field(text, "VmRSS:"), Some(10240));
        assert_eq!(status_field(text, "VmHWM:"), Some(20480));
        assert_eq!(status_field(text, "VmSwap:"), None);
    }

    #[test]
    fn own_status_is_readable() {
        let status = read_status().unwrap();
        assert!(status.rss_kib > 0);
        assert!(status.peak_kib >= status.rss_kib);
    }
}
