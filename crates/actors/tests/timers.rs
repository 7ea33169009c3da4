//! Room timers with paused time: the room actors run on tokio's clock
//! through [`TokioClock`], so `tokio::time::advance` moves their wall clock,
//! and awaiting an event lets tokio jump straight to the next timer.
//!
//! A timer fires on a whole millisecond of tokio's clock, so a check that a
//! timer fired "at" its deadline allows [`TIMER_SLACK`] after it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use roomd_actors::{Clock, Command, RoomService, ServiceConfig, SingleNode, TokioClock};
use roomd_model::{
    CloseReason, ConfigurationInput, Event, EventName, NewRoom, Principal, Room, RoomId,
    RoomResult, RoomState, UpdateDocument,
};
use roomd_store::MemoryStore;
use tokio::sync::mpsc::Receiver;

const ORG: &str = "clinic1";
const TIMER_SLACK: chrono::Duration = chrono::Duration::milliseconds(2);
/// Longest paused time a test waits for an event before it fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

struct Node {
    service: RoomService,
    clock: TokioClock,
}

impl Node {
    async fn start() -> Self {
        let clock = TokioClock::new();
        let service = RoomService::start(
            Arc::new(MemoryStore::new()),
            Arc::new(clock),
            Arc::new(SingleNode::new()),
            ServiceConfig::default(),
        )
        .await
        .expect("start the room service");
        Node { service, clock }
    }

    async fn create(&self, open: bool, configuration: ConfigurationInput) -> Room {
        let request = NewRoom {
            label: "Visit".into(),
            configuration,
            open,
            ..NewRoom::default()
        };
        self.service
            .create(ORG, &Principal::Service, request, None)
            .await
            .expect("create the room")
    }

    async fn get(&self, room_id: RoomId) -> Room {
        self.service
            .get(ORG, &Principal::Service, room_id)
            .await
            .expect("get the room")
    }

    async fn command(&self, room_id: RoomId, command: Command) -> RoomResult<Room> {
        self.service
            .command(ORG, &Principal::Service, room_id, command)
            .await
    }

    async fn join(&self, room_id: RoomId, account: &str) -> Room {
        let command = Command::Join {
            account: Some(account.to_owned()),
        };
        self.command(room_id, command)
            .await
            .unwrap_or_else(|fault| panic!("{account} joins: {fault}"))
    }

    async fn leave(&self, room_id: RoomId, account: &str) -> Room {
        let command = Command::Leave {
            account: Some(account.to_owned()),
        };
        self.command(room_id, command)
            .await
            .unwrap_or_else(|fault| panic!("{account} leaves: {fault}"))
    }

    async fn update(&self, room_id: RoomId, update_json: &str) -> Room {
        let command = Command::Update {
            document: UpdateDocument::parse(update_json).expect("a valid update document"),
            expected_version: None,
        };
        self.command(room_id, command)
            .await
            .unwrap_or_else(|fault| panic!("update {update_json}: {fault}"))
    }

    /// Follows the room's events from the next one on.
    async fn watch(&self, room: &Room) -> Receiver<RoomResult<Event>> {
        self.service
            .watch(
                ORG,
                &Principal::Service,
                "service",
                room.id,
                room.last_seq + 1,
            )
            .await
            .expect("watch the room")
    }

    /// Advances tokio's clock, and with it the room clock, to `at`, then
    /// lets the actors handle whatever timer came due.
    async fn advance_to(&self, at: DateTime<Utc>) {
        let delay = (at - self.clock.now())
            .to_std()
            .expect("advance_to moves forward only");
        tokio::time::advance(delay).await;
        settle().await;
    }

    /// Advances to 1 ms before `deadline` and asserts that the room is still
    /// in `state`, so no timer fired early.
    async fn assert_state_until(&self, room_id: RoomId, deadline: DateTime<Utc>, state: RoomState) {
        self.advance_to(deadline - chrono::Duration::milliseconds(1))
            .await;
        let room = self.get(room_id).await;
        assert_eq!(room.state, state, "state 1 ms before {deadline}");
    }

    /// Waits for the room to close and asserts that it closed at `deadline`
    /// for `reason`, in its event log and in the store. Returns the
    /// `room.closed` event.
    async fn assert_closes_at(
        &self,
        events: &mut Receiver<RoomResult<Event>>,
        room_id: RoomId,
        deadline: DateTime<Utc>,
        reason: CloseReason,
    ) -> Event {
        let closed = next_event_named(events, EventName::RoomClosed).await;
        assert_fired_at(closed.at, deadline);
        assert_eq!(closed.reason.as_deref(), Some(reason.as_str()));

        let room = self.get(room_id).await;
        assert_eq!(room.state, RoomState::Closed);
        assert_eq!(room.close_reason, Some(reason));
        assert_eq!(room.closed_at, Some(closed.at));
        closed
    }
}

/// Yields to the scheduler 20 times without moving the clock, so that a
/// timer that came due reaches its actor and is handled. A due timer takes
/// about three task hops (timer task, actor, store subscribers), so 20 is
/// an estimate with room to spare.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn seconds(secs: i64) -> chrono::Duration {
    chrono::Duration::seconds(secs)
}

fn configuration(unused: u32, empty: u32, max_duration: Option<u32>) -> ConfigurationInput {
    ConfigurationInput {
        max_participants: Some(5),
        unused_timeout: Some(unused),
        empty_timeout: Some(empty),
        max_duration,
        open_at: None,
    }
}

/// Waits, in paused time, for the next event named `name`.
async fn next_event_named(events: &mut Receiver<RoomResult<Event>>, name: EventName) -> Event {
    let found = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match events.recv().await {
                Some(Ok(event)) if event.name == name => return event,
                Some(Ok(_)) => {}
                Some(Err(fault)) => panic!("watch failed: {fault}"),
                None => panic!("watch ended before {name}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {name} within {EVENT_TIMEOUT:?}"))
}

/// Asserts that a timer due at `deadline` fired at `fired`: not before, and
/// at most [`TIMER_SLACK`] after.
#[track_caller]
fn assert_fired_at(fired: DateTime<Utc>, deadline: DateTime<Utc>) {
    assert!(
        fired >= deadline,
        "fired at {fired}, before its deadline {deadline}"
    );
    assert!(
        fired <= deadline + TIMER_SLACK,
        "fired at {fired}, later than its deadline {deadline}"
    );
}

#[tokio::test(start_paused = true)]
async fn new_room_opens_at_once() {
    let node = Node::start().await;
    let room = node.create(false, ConfigurationInput::default()).await;
    assert_eq!(room.state, RoomState::New);
    let mut events = node.watch(&room).await;

    let opened = next_event_named(&mut events, EventName::RoomOpened).await;
    assert_fired_at(opened.at, room.created);

    let room = node.get(room.id).await;
    assert_eq!(room.state, RoomState::Open);
    assert_eq!(room.opened_at, Some(opened.at));
    assert_eq!(room.deadlines.unused, Some(opened.at + seconds(300)));
}

#[tokio::test(start_paused = true)]
async fn unused_timeout_closes_at_deadline() {
    let node = Node::start().await;
    let room = node.create(true, configuration(60, 300, None)).await;
    let deadline = room.opened_at.unwrap() + seconds(60);
    assert_eq!(room.deadlines.unused, Some(deadline));
    let mut events = node.watch(&room).await;

    node.assert_state_until(room.id, deadline, RoomState::Open)
        .await;
    node.assert_closes_at(&mut events, room.id, deadline, CloseReason::UnusedTimeout)
        .await;
}

#[tokio::test(start_paused = true)]
async fn empty_timer_starts_at_last_leave() {
    let node = Node::start().await;
    let room = node.create(true, configuration(60, 30, None)).await;
    let mut events = node.watch(&room).await;
    node.join(room.id, "acc1").await;
    node.join(room.id, "acc2").await;

    // The join cancelled the unused timer.
    let opened_at = room.opened_at.unwrap();
    node.advance_to(opened_at + seconds(100)).await;
    assert_eq!(node.get(room.id).await.state, RoomState::Open);

    let one_left = node.leave(room.id, "acc1").await;
    assert_eq!(
        one_left.deadlines.empty, None,
        "empty timer armed with acc2 still connected"
    );

    node.advance_to(opened_at + seconds(140)).await;
    let last_left = node.leave(room.id, "acc2").await;
    let first_deadline = node.clock.now() + seconds(30);
    assert_eq!(last_left.deadlines.empty, Some(first_deadline));

    // A rejoin cancels it.
    node.advance_to(first_deadline - seconds(10)).await;
    let rejoined = node.join(room.id, "acc1").await;
    assert_eq!(rejoined.deadlines.empty, None);
    node.advance_to(first_deadline + seconds(60)).await;
    assert_eq!(
        node.get(room.id).await.state,
        RoomState::Open,
        "closed after a rejoin"
    );

    let left_again = node.leave(room.id, "acc1").await;
    let deadline = node.clock.now() + seconds(30);
    assert_eq!(left_again.deadlines.empty, Some(deadline));
    node.assert_closes_at(&mut events, room.id, deadline, CloseReason::EmptyTimeout)
        .await;
}

#[tokio::test(start_paused = true)]
async fn max_duration_closes_room() {
    let node = Node::start().await;
    let room = node.create(true, configuration(60, 30, Some(120))).await;
    let deadline = room.opened_at.unwrap() + seconds(120);
    assert_eq!(room.deadlines.max_duration, Some(deadline));
    let mut events = node.watch(&room).await;
    node.join(room.id, "acc1").await;

    node.assert_state_until(room.id, deadline, RoomState::Open)
        .await;

    // The connected participant is disconnected with the same reason.
    let left = next_event_named(&mut events, EventName::ParticipantLeft).await;
    assert_eq!(left.account_id.as_deref(), Some("acc1"));
    assert_eq!(left.reason.as_deref(), Some("max_duration"));
    node.assert_closes_at(&mut events, room.id, deadline, CloseReason::MaxDuration)
        .await;
}

#[tokio::test(start_paused = true)]
async fn future_open_at_keeps_room_new() {
    let node = Node::start().await;
    let open_at = node.clock.now() + seconds(90);
    let room = node
        .create(
            false,
            ConfigurationInput {
                open_at: Some(open_at),
                ..configuration(60, 30, None)
            },
        )
        .await;
    assert_eq!(room.deadlines.open, Some(open_at));
    let mut events = node.watch(&room).await;

    node.assert_state_until(room.id, open_at, RoomState::New)
        .await;
    let early_join = node
        .command(
            room.id,
            Command::Join {
                account: Some("acc1".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(early_join.reason(), "invalidState.notOpen");

    let opened = next_event_named(&mut events, EventName::RoomOpened).await;
    assert_fired_at(opened.at, open_at);
    let room = node.get(room.id).await;
    assert_eq!(room.state, RoomState::Open);
    assert_eq!(room.deadlines.unused, Some(opened.at + seconds(60)));
    node.join(room.id, "acc1").await;
}

#[tokio::test(start_paused = true)]
async fn shorter_unused_timeout_rearms() {
    let node = Node::start().await;
    let room = node.create(true, configuration(300, 300, None)).await;
    let opened_at = room.opened_at.unwrap();
    let mut events = node.watch(&room).await;

    node.advance_to(opened_at + seconds(10)).await;
    let updated = node
        .update(room.id, r#"{"$set":{"configuration.unusedTimeout":30}}"#)
        .await;
    let deadline = opened_at + seconds(30);
    assert_eq!(
        updated.deadlines.unused,
        Some(deadline),
        "the timer keeps its start"
    );

    node.assert_state_until(room.id, deadline, RoomState::Open)
        .await;
    node.assert_closes_at(&mut events, room.id, deadline, CloseReason::UnusedTimeout)
        .await;
}

#[tokio::test(start_paused = true)]
async fn passed_unused_deadline_fires_at_once() {
    let node = Node::start().await;
    let room = node.create(true, configuration(300, 300, None)).await;
    let mut events = node.watch(&room).await;

    node.advance_to(room.opened_at.unwrap() + seconds(20)).await;
    node.update(room.id, r#"{"$set":{"configuration.unusedTimeout":5}}"#)
        .await;
    let updated_at = node.clock.now();

    node.assert_closes_at(&mut events, room.id, updated_at, CloseReason::UnusedTimeout)
        .await;
}

#[tokio::test(start_paused = true)]
async fn killed_room_restarts_with_timers() {
    let node = Node::start().await;
    let room = node.create(true, configuration(60, 300, None)).await;
    let deadline = room.opened_at.unwrap() + seconds(60);
    let mut events = node.watch(&room).await;

    node.advance_to(room.opened_at.unwrap() + seconds(1)).await;
    assert!(node.service.kill_room(room.id));

    // Nothing requests the room, so only a restart by the registry, which
    // re-arms the timer from the stored deadline, can close it.
    let closed = node
        .assert_closes_at(&mut events, room.id, deadline, CloseReason::UnusedTimeout)
        .await;
    assert_eq!(closed.seq, room.last_seq + 1);
}
