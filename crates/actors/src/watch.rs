//! Replay and live follow of a room's event log.
//!
//! The follower subscribes to live events before it reads the stored log,
//! so no event committed in between is missed, and it drops any live event
//! at or below the last sequence number it delivered, so none is repeated.
//! When it falls behind or finds a gap it reads the missing events back from
//! the store.
//!
//! [`WatchCounts`] caps the open watches of one room and of one caller on
//! this node. A follower keeps its [`WatchPermit`] until it ends.

use std::sync::Arc;

use dashmap::DashMap;
use roomd_model::{Event, Limits, RoomError, RoomId, RoomResult};
use roomd_store::Store;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// Events read from the store per round trip while catching up.
const READ_BATCH: usize = 256;
/// Events buffered for a slow watcher before the follower waits.
const CHANNEL_CAPACITY: usize = 64;

/// Open watches on this node, per room and per caller.
#[derive(Debug, Default)]
pub(crate) struct WatchCounts {
    rooms: DashMap<RoomId, usize>,
    callers: DashMap<String, usize>,
}

impl WatchCounts {
    /// Counts a new watch of `room_id` by `caller`, or fails with a
    /// `limit.watchers` fault when either already has its maximum.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        room_id: RoomId,
        caller: &str,
        limits: &Limits,
    ) -> RoomResult<WatchPermit> {
        {
            let mut watchers = self.rooms.entry(room_id).or_insert(0);
            if *watchers >= limits.max_watchers_per_room {
                let max = limits.max_watchers_per_room;
                drop(watchers);
                self.rooms.remove_if(&room_id, |_, count| *count == 0);
                return Err(RoomError::RoomWatchers {
                    room_id: room_id.to_string(),
                    max,
                });
            }
            *watchers += 1;
        }

        let mut watches = self.callers.entry(caller.to_owned()).or_insert(0);
        if *watches >= limits.max_watchers_per_caller {
            drop(watches);
            release(&self.rooms, &room_id);
            return Err(RoomError::CallerWatchers {
                max: limits.max_watchers_per_caller,
            });
        }
        *watches += 1;
        Ok(WatchPermit {
            counts: self.clone(),
            room_id,
            caller: caller.to_owned(),
        })
    }
}

/// Decrements a count and drops its key at zero, so that the maps hold only
/// rooms and callers that watch now.
fn release<K: std::hash::Hash + Eq + Clone>(counts: &DashMap<K, usize>, key: &K) {
    if let Some(mut count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
    }
    counts.remove_if(key, |_, count| *count == 0);
}

/// One counted watch; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct WatchPermit {
    counts: Arc<WatchCounts>,
    room_id: RoomId,
    caller: String,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        release(&self.counts.rooms, &self.room_id);
        release(&self.counts.callers, &self.caller);
    }
}

pub(crate) fn follow(
    store: Arc<dyn Store>,
    org: String,
    room_id: RoomId,
    from_seq: u64,
    ended: watch::Receiver<bool>,
    permit: WatchPermit,
) -> mpsc::Receiver<RoomResult<Event>> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut follower = Follower {
            store,
            org,
            room_id,
            next_seq: from_seq.max(1),
            sender,
            ended,
            _permit: permit,
        };
        match follower.run().await {
            Ok(()) => debug!(%room_id, "watch ended"),
            Err(Stop::Fault(fault)) => {
                let _ = follower.sender.send(Err(fault)).await;
            }
            Err(Stop::WatcherGone) => debug!(%room_id, "watcher went away"),
        }
    });
    receiver
}

enum Stop {
    Fault(RoomError),
    WatcherGone,
}

struct Follower {
    store: Arc<dyn Store>,
    org: String,
    room_id: RoomId,
    next_seq: u64,
    sender: mpsc::Sender<RoomResult<Event>>,
    /// Turns `true` when the node stops.
    ended: watch::Receiver<bool>,
    /// Held while the watch runs.
    _permit: WatchPermit,
}

/// Whether the log goes on after what was delivered.
#[derive(PartialEq)]
enum LogState {
    Open,
    Ended,
}

impl Follower {
    async fn run(&mut self) -> Result<(), Stop> {
        let mut live = self.store.subscribe(self.room_id);
        if self.catch_up().await? == LogState::Ended {
            return Ok(());
        }

        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                () = self.sender.closed() => return Err(Stop::WatcherGone),
                _ = self.ended.wait_for(|ended| *ended) => {
                    // End with a retryable fault, so that the watcher
                    // resumes elsewhere: a clean end would read as the end
                    // of the room's log.
                    return Err(Stop::Fault(RoomError::OwnerUnavailable {
                        room_id: self.room_id.to_string(),
                        message: format!(
                            "this node is stopping; watch again from sequence number {}",
                            self.next_seq
                        ),
                    }));
                }
            };
            let state = match received {
                Ok(event) if event.seq < self.next_seq => LogState::Open,
                Ok(event) if event.seq == self.next_seq => self.deliver(event).await?,
                Ok(_) | Err(RecvError::Lagged(_)) => self.catch_up().await?,
                Err(RecvError::Closed) => {
                    // The store dropped the channel (a deleted room, or a
                    // lost connection to the store): listen again, and read
                    // back whatever was committed in between.
                    live = self.store.subscribe(self.room_id);
                    self.catch_up().await?
                }
            };
            if state == LogState::Ended {
                return Ok(());
            }
        }
    }

    /// Delivers every stored event from `next_seq` on.
    async fn catch_up(&mut self) -> Result<LogState, Stop> {
        loop {
            let batch = self
                .store
                .read_events(&self.org, self.room_id, self.next_seq, READ_BATCH)
                .await
                .map_err(|e| Stop::Fault(e.into()))?;
            let last_batch = batch.len() < READ_BATCH;
            for event in batch {
                if self.deliver(event).await? == LogState::Ended {
                    return Ok(LogState::Ended);
                }
            }
            if last_batch {
                return Ok(LogState::Open);
            }
        }
    }

    async fn deliver(&mut self, event: Event) -> Result<LogState, Stop> {
        debug_assert_eq!(event.seq, self.next_seq);
        self.next_seq = event.seq + 1;
        let ended = event.is_terminal();
        self.sender
            .send(Ok(event))
            .await
            .map_err(|_| Stop::WatcherGone)?;
        Ok(if ended {
            LogState::Ended
        } else {
            LogState::Open
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_room: usize, per_caller: usize) -> Limits {
        Limits {
            max_watchers_per_room: per_room,
            max_watchers_per_caller: per_caller,
            ..Limits::default()
        }
    }

    #[test]
    fn room_watchers_at_and_over_the_limit() {
        let counts = Arc::new(WatchCounts::default());
        let limits = limits(2, 10);
        let room = RoomId::generate();
        let first = counts.acquire(room, "a", &limits).unwrap();
        let _second = counts.acquire(room, "b", &limits).unwrap();
        let err = counts.acquire(room, "c", &limits).unwrap_err();
        assert_eq!(err.reason(), "limit.watchers");
        assert!(err.to_string().contains("maximum of 2 watchers"), "{err}");

        drop(first);
        counts.acquire(room, "c", &limits).unwrap();
    }

    #[test]
    fn caller_watchers_at_and_over_the_limit() {
        let counts = Arc::new(WatchCounts::default());
        let limits = limits(10, 2);
        let _first = counts.acquire(RoomId::generate(), "a", &limits).unwrap();
        let _second = counts.acquire(RoomId::generate(), "a", &limits).unwrap();
        let rejected_room = RoomId::generate();
        let err = counts.acquire(rejected_room, "a", &limits).unwrap_err();
        assert_eq!(err.reason(), "limit.watchers");
        assert_eq!(err.metadata()[0], ("scope", "caller".to_string()));
        assert!(
            !counts.rooms.contains_key(&rejected_room),
            "a rejected watch kept its room's count"
        );
        counts.acquire(RoomId::generate(), "b", &limits).unwrap();
    }

    #[test]
    fn dropped_permits_leave_no_keys() {
        let counts = Arc::new(WatchCounts::default());
        let permit = counts
            .acquire(RoomId::generate(), "a", &Limits::default())
            .unwrap();
        drop(permit);
        assert!(counts.rooms.is_empty());
        assert!(counts.callers.is_empty());
    }
}
