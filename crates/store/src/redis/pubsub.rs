//! Delivery of committed events to local subscribers over one Redis
//! pub/sub connection per store.
//!
//! [`Subscriptions::subscribe`] returns a receiver of a per-room broadcast
//! channel and sends the room to the background task, which SUBSCRIBEs to
//! the room's Redis channel. The task forwards every published event to the
//! room's broadcast channel, unsubscribes from rooms whose receivers are all
//! gone, and reconnects when the connection drops. On a drop it first
//! removes every broadcast channel, so receivers see `RecvError::Closed`,
//! subscribe again and read the log for what they missed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, PubSub, PubSubSink};
use redis::{Client, Msg};
use roomd_model::{Event, RoomId};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::keys::Keys;

/// Events a subscriber may fall behind by before it receives `Lagged`.
const SUBSCRIBER_BUFFER: usize = 256;
/// First delay before reconnecting a dropped pub/sub connection. It doubles
/// with every failed attempt, up to [`MAX_RECONNECT_DELAY`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// How often the task drops channels without receivers and PINGs Redis to
/// detect a connection that hangs without closing.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);
/// Channels per SUBSCRIBE or UNSUBSCRIBE command.
const CHANNELS_PER_COMMAND: usize = 500;

/// The local subscribers of one store and the task that feeds them.
pub(super) struct Subscriptions {
    senders: Arc<Senders>,
    /// Rooms that got their first local subscriber, for the task to
    /// SUBSCRIBE to.
    requests: mpsc::UnboundedSender<RoomId>,
    task: JoinHandle<()>,
}

/// Per-room broadcast channels, shared by the store and its task.
#[derive(Default)]
struct Senders(Mutex<HashMap<RoomId, broadcast::Sender<Event>>>);

impl Senders {
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, broadcast::Sender<Event>>> {
        // Nothing panics while the lock is held, and a map of senders stays
        // valid whatever happened, so a poisoned lock is taken over.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Settings of the pub/sub connection.
pub(super) struct PubSubSettings {
    /// Client for the dedicated pub/sub connection (RESP2).
    pub client: Client,
    /// Connection for reading each room's last event after subscribing.
    pub connection: ConnectionManager,
    pub keys: Keys,
    /// URL without password, for logs.
    pub shown_url: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl Subscriptions {
    /// Starts the background task. It connects on its own and keeps
    /// reconnecting until the returned value is dropped.
    pub(super) fn start(settings: PubSubSettings) -> Self {
        let senders = Arc::new(Senders::default());
        let (requests, pending) = mpsc::unbounded_channel();
        let task = Task {
            senders: senders.clone(),
            pending,
            settings,
            subscribed: HashSet::new(),
        };
        Subscriptions {
            senders,
            requests,
            task: tokio::spawn(task.run()),
        }
    }

    /// Returns a receiver of the room's events. The first receiver of a room
    /// makes the task SUBSCRIBE to the room's channel, which completes after
    /// this returns. The task then sends the room's last stored event to the
    /// channel, so that a receiver detects events committed in between.
    pub(super) fn subscribe(&self, room_id: RoomId) -> broadcast::Receiver<Event> {
        let mut senders = self.senders.lock();
        if let Some(sender) = senders.get(&room_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(SUBSCRIBER_BUFFER);
        senders.insert(room_id, sender);
        // Fails only once the task has ended, which happens when this value
        // is dropped.
        let _ = self.requests.send(room_id);
        receiver
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reason the task stopped serving one connection.
enum Stop {
    /// The store was dropped: the task ends.
    StoreDropped,
    /// The connection failed: the task reconnects.
    ConnectionLost(String),
}

struct Task {
    senders: Arc<Senders>,
    pending: mpsc::UnboundedReceiver<RoomId>,
    settings: PubSubSettings,
    /// Rooms whose channel the current connection is subscribed to.
    subscribed: HashSet<RoomId>,
}

impl Task {
    async fn run(mut self) {
        let mut delay = MIN_RECONNECT_DELAY;
        let mut connected_before = false;
        let mut failed_attempts: u64 = 0;
        loop {
            match self.connect().await {
                Ok(pubsub) => {
                    if connected_before {
                        info!(url = %self.settings.shown_url, "Redis pub/sub connection restored");
                    }
                    connected_before = true;
                    delay = MIN_RECONNECT_DELAY;
                    failed_attempts = 0;
                    match self.serve(pubsub).await {
                        Stop::StoreDropped => return,
                        Stop::ConnectionLost(reason) => warn!(
                            url = %self.settings.shown_url,
                            error = %reason,
                            "Redis pub/sub connection lost; closing every event subscription"
                        ),
                    }
                    self.close_all();
                }
                Err(error) => {
                    failed_attempts += 1;
                    warn!(
                        url = %self.settings.shown_url,
                        %error,
                        failed_attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot open the Redis pub/sub connection; retrying"
                    );
                }
            }
            if !self.wait(delay).await {
                return;
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    }

    async fn connect(&self) -> Result<PubSub, String> {
        let connect = self.settings.client.get_async_pubsub();
        match tokio::time::timeout(self.settings.connect_timeout, connect).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "timed out after {:?}",
                self.settings.connect_timeout
            )),
        }
    }

    /// Waits `delay` before the next connection attempt. Returns `false`
    /// when the store was dropped meanwhile. Rooms subscribed in the
    /// meantime stay in the map and are subscribed on connect.
    async fn wait(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                request = self.pending.recv() => {
                    if request.is_none() {
                        return false;
                    }
                }
            }
        }
    }

    /// Drops every broadcast channel, so that its receivers see `Closed`
    /// once they have read what is buffered.
    fn close_all(&mut self) {
        self.senders.lock().clear();
        self.subscribed.clear();
    }

    async fn serve(&mut self, pubsub: PubSub) -> Stop {
        let (mut sink, mut messages) = pubsub.split();
        self.subscribed.clear();
        let rooms: Vec<RoomId> = self.senders.lock().keys().copied().collect();
        if let Err(reason) = self.subscribe_rooms(&mut sink, rooms).await {
            return Stop::ConnectionLost(reason);
        }

        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.reset();
        loop {
            let step = tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.forward(&mut sink, &message).await,
                    None => Err("the connection was closed".to_owned()),
                },
                request = self.pending.recv() => match request {
                    Some(room_id) => {
                        let mut rooms = vec![room_id];
                        while let Ok(more) = self.pending.try_recv() {
                            rooms.push(more);
                        }
                        self.subscribe_rooms(&mut sink, rooms).await
                    }
                    None => return Stop::StoreDropped,
                },
                _ = maintenance.tick() => self.maintain(&mut sink).await,
            };
            if let Err(reason) = step {
                return Stop::ConnectionLost(reason);
            }
        }
    }

    /// SUBSCRIBEs to the channels of those `rooms` that still have a local
    /// channel and are not subscribed yet, then sends each its last stored
    /// event.
    async fn subscribe_rooms(
        &mut self,
        sink: &mut PubSubSink,
        rooms: Vec<RoomId>,
    ) -> Result<(), String> {
        let wanted: Vec<RoomId> = {
            let senders = self.senders.lock();
            rooms
                .into_iter()
                .filter(|room_id| senders.contains_key(room_id))
                .filter(|room_id| !self.subscribed.contains(room_id))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for chunk in wanted.chunks(CHANNELS_PER_COMMAND) {
            let channels: Vec<String> = chunk
                .iter()
                .map(|id| self.settings.keys.channel(*id))
                .collect();
            let timeout = self.settings.response_timeout;
            match tokio::time::timeout(timeout, sink.subscribe(&channels)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(format!("SUBSCRIBE failed: {error}")),
                Err(_) => return Err(format!("SUBSCRIBE timed out after {timeout:?}")),
            }
            self.subscribed.extend(chunk.iter().copied());
            self.send_last_events(chunk.to_vec());
        }
        Ok(())
    }

    /// UNSUBSCRIBEs from the channels of `rooms`.
    async fn unsubscribe_rooms(
        &mut self,
        sink: &mut PubSubSink,
        rooms: Vec<RoomId>,
    ) -> Result<(), String> {
        for chunk in rooms.chunks(CHANNELS_PER_COMMAND) {
            for room_id in chunk {
                self.subscribed.remove(room_id);
            }
            let channels: Vec<String> = chunk
                .iter()
                .map(|id| self.settings.keys.channel(*id))
                .collect();
            let timeout = self.settings.response_timeout;
            match tokio::time::timeout(timeout, sink.unsubscribe(&channels)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(format!("UNSUBSCRIBE failed: {error}")),
                Err(_) => return Err(format!("UNSUBSCRIBE timed out after {timeout:?}")),
            }
        }
        Ok(())
    }

    /// Reads the last stored event of each room in the background and sends
    /// it to the room's channel. Events committed between
    /// [`Subscriptions::subscribe`] and the SUBSCRIBE taking effect were not
    /// delivered. The last event carries the highest `seq`, so a receiver
    /// that sees a gap reads the log.
    fn send_last_events(&self, rooms: Vec<RoomId>) {
        let senders = self.senders.clone();
        let keys = self.settings.keys.clone();
        let mut connection = self.settings.connection.clone();
        tokio::spawn(async move {
            let mut pipeline = redis::pipe();
            for room_id in &rooms {
                pipeline.cmd("LINDEX").arg(keys.events(*room_id)).arg(-1);
            }
            let last: Vec<Option<String>> = match pipeline.query_async(&mut connection).await {
                Ok(last) => last,
                Err(error) => {
                    warn!(%error, rooms = rooms.len(), "cannot read the last events of newly subscribed rooms");
                    return;
                }
            };
            let senders = senders.lock();
            for (room_id, json) in rooms.iter().zip(last) {
                let Some(json) = json else { continue };
                let Some(event) = parse_event(*room_id, json.as_bytes()) else {
                    continue;
                };
                if let Some(sender) = senders.get(room_id) {
                    // No receiver left is fine; maintenance drops the channel.
                    let _ = sender.send(event);
                }
            }
        });
    }

    /// Sends one published event to its room's channel. Drops the channel
    /// and unsubscribes when no receiver is left, or when the event ends the
    /// room's log.
    async fn forward(&mut self, sink: &mut PubSubSink, message: &Msg) -> Result<(), String> {
        let channel = message.get_channel_name();
        let Some(room_id) = self.settings.keys.room_of_channel(channel) else {
            warn!(
                channel,
                "skipping a message on a channel that names no room"
            );
            return Ok(());
        };
        let Some(event) = parse_event(room_id, message.get_payload_bytes()) else {
            return Ok(());
        };

        let finished = {
            let mut senders = self.senders.lock();
            match senders.get(&room_id) {
                Some(sender) => {
                    // No receiver left is fine: the channel is dropped below.
                    let _ = sender.send(event.clone());
                    let finished = event.is_terminal() || sender.receiver_count() == 0;
                    if finished {
                        senders.remove(&room_id);
                    }
                    finished
                }
                None => true,
            }
        };
        if finished {
            debug!(%room_id, "unsubscribing from the events of a room without subscribers");
            self.unsubscribe_rooms(sink, vec![room_id]).await?;
        }
        Ok(())
    }

    /// Drops the channels without receivers, unsubscribes from rooms that
    /// have no channel any more, and PINGs the server.
    async fn maintain(&mut self, sink: &mut PubSubSink) -> Result<(), String> {
        let unused: Vec<RoomId> = {
            let mut senders = self.senders.lock();
            senders.retain(|_, sender| sender.receiver_count() > 0);
            self.subscribed
                .iter()
                .filter(|room_id| !senders.contains_key(room_id))
                .copied()
                .collect()
        };
        self.unsubscribe_rooms(sink, unused).await?;

        let timeout = self.settings.response_timeout;
        match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("PING failed: {error}")),
            Err(_) => Err(format!("PING timed out after {timeout:?}")),
        }
    }
}

/// Parses an event published or stored for `room_id`; logs and skips one
/// that is not valid event JSON.
fn parse_event(room_id: RoomId, json: &[u8]) -> Option<Event> {
    match serde_json::from_slice::<Event>(json) {
        Ok(event) => Some(event),
        Err(error) => {
            warn!(%room_id, %error, "skipping an event that is not valid event JSON");
            None
        }
    }
}
