//! Replay and live follow of a room's event log.
//!
//! The follower subscribes to live events before it reads the stored log,
//! so no event committed in between is missed, and it drops any live event
//! at or below the last sequence number it delivered, so none is repeated.
//! When it falls behind or finds a gap it reads the missing events back from
//! the store.

use std::sync::Arc;

use roomd_model::{Event, RoomError, RoomId, RoomResult};
use roomd_store::Store;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// Events read from the store per round trip while catching up.
const READ_BATCH: usize = 256;
/// Events buffered for a slow watcher before the follower waits.
const CHANNEL_CAPACITY: usize = 64;

pub(crate) fn follow(
    store: Arc<dyn Store>,
    org: String,
    room_id: RoomId,
    from_seq: u64,
    ended: watch::Receiver<bool>,
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
