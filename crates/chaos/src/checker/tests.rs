//! Each rule, fed a history with its violation planted, reports it; the
//! clean history reports nothing. A checker that can never fail fails here.

use chrono::{TimeDelta, TimeZone, Utc};

use super::{Rule, check};
use crate::history::{
    Entry, FaultKind, FaultRecord, FinalRoom, LogEvent, Op, Outcome, RequestRecord, RoomSnapshot,
    RunInfo, Time, WatchRecord,
};

const ORG: &str = "limited";

fn at(ms: i64) -> Time {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap() + TimeDelta::milliseconds(ms)
}

fn event(seq: u64, name: &str, version: u64, at_ms: i64) -> LogEvent {
    LogEvent {
        seq,
        name: name.into(),
        version,
        epoch: 1,
        at: at(at_ms),
        account: String::new(),
        reason: String::new(),
    }
}

fn by(mut event: LogEvent, account: &str) -> LogEvent {
    event.account = account.into();
    event
}

fn because(mut event: LogEvent, reason: &str) -> LogEvent {
    event.reason = reason.into();
    event
}

fn snapshot(
    room: &str,
    state: &str,
    version: u64,
    last_seq: u64,
    connected: &[&str],
) -> RoomSnapshot {
    RoomSnapshot {
        id: room.into(),
        state: state.into(),
        version,
        last_seq,
        connected: connected
            .iter()
            .map(|&account| account.to_owned())
            .collect(),
    }
}

/// Builds a room that opened, had acc1 join and leave, and was closed on
/// request.
fn visit(room: &str) -> FinalRoom {
    FinalRoom {
        room: room.into(),
        org: ORG.into(),
        snapshot: Some(snapshot(room, "closed", 4, 5, &[])),
        max_participants: 2,
        unused_timeout: 300,
        empty_timeout: 300,
        max_duration: None,
        events: vec![
            event(1, "room.created", 1, 0),
            event(2, "room.opened", 1, 0),
            by(event(3, "participant.joined", 2, 100), "acc1"),
            by(event(4, "participant.left", 3, 200), "acc1"),
            because(event(5, "room.closed", 4, 300), "requested"),
        ],
    }
}

fn request(
    id: u64,
    room: &str,
    op: Op,
    ms: (i64, i64),
    result: Option<RoomSnapshot>,
) -> RequestRecord {
    RequestRecord {
        id,
        client: 0,
        node: 0,
        org: ORG.into(),
        room: Some(room.into()),
        op,
        start: at(ms.0),
        end: at(ms.1),
        outcome: Outcome::Ok,
        result,
    }
}

fn create_op() -> Op {
    Op::Create {
        request_id: "r".into(),
        max_participants: 2,
        unused_timeout: 300,
        empty_timeout: 300,
        max_duration: None,
    }
}

/// Builds the requests that made [`visit`]'s log.
fn visit_requests(room: &str) -> Vec<RequestRecord> {
    vec![
        request(
            1,
            room,
            create_op(),
            (-10, 10),
            Some(snapshot(room, "open", 1, 2, &[])),
        ),
        request(
            2,
            room,
            Op::Join {
                account: "acc1".into(),
            },
            (90, 110),
            Some(snapshot(room, "open", 2, 3, &["acc1"])),
        ),
        request(
            3,
            room,
            Op::Leave {
                account: "acc1".into(),
            },
            (190, 210),
            Some(snapshot(room, "open", 3, 4, &[])),
        ),
        request(
            4,
            room,
            Op::Close,
            (290, 310),
            Some(snapshot(room, "closed", 4, 5, &[])),
        ),
    ]
}

fn run() -> RunInfo {
    RunInfo {
        seed: 1,
        nodes: 3,
        node_ttl_secs: 2,
        failover_bound_ms: 5_000,
        limited_org: ORG.into(),
        max_open_rooms: 2,
        started: at(-1_000),
        quiesced: at(10_000),
        finished: at(20_000),
    }
}

fn history(rooms: Vec<FinalRoom>, requests: Vec<RequestRecord>) -> Vec<Entry> {
    let mut entries = vec![Entry::Run(run())];
    entries.extend(requests.into_iter().map(Entry::Request));
    entries.extend(rooms.into_iter().map(Entry::Final));
    entries
}

fn rules(entries: &[Entry]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = check(entries).unwrap().iter().map(|v| v.rule).collect();
    rules.dedup();
    rules
}

#[test]
fn clean_history_has_no_violation() {
    let entries = history(vec![visit("r1")], visit_requests("r1"));
    assert_eq!(check(&entries).unwrap(), []);
}

#[test]
fn history_without_final_states_is_rejected() {
    let cut_short = history(Vec::new(), visit_requests("r1"));
    let error = check(&cut_short).unwrap_err();
    assert!(error.contains("no final state"), "{error}");
    assert!(error.contains("r1"), "{error}");
}

#[test]
fn watched_room_without_final_state_is_rejected() {
    let room = visit("r1");
    let mut entries = history(vec![room.clone()], visit_requests("r1"));
    let mut other = room.clone();
    other.room = "r2".into();
    entries.push(watch(&[1, 2], &other));

    let error = check(&entries).unwrap_err();
    assert!(error.contains("r2"), "{error}");
}

#[test]
fn acknowledged_join_missing_from_the_log_is_reported() {
    let mut room = visit("r1");
    // The join and leave were lost; the close follows the opening.
    room.events.drain(2..4);
    room.events[2].seq = 3;
    room.events[2].version = 2;
    room.snapshot = Some(snapshot("r1", "closed", 2, 3, &[]));
    let mut requests = visit_requests("r1");
    requests.truncate(2);

    let violations = check(&history(vec![room], requests)).unwrap();
    let missing = violations
        .iter()
        .find(|v| v.rule == Rule::AcknowledgedChange)
        .expect("the lost join is reported");
    assert_eq!(missing.requests, [2]);
    assert_eq!(missing.room.as_deref(), Some("r1"));
}

#[test]
fn acknowledged_close_of_open_room_reported() {
    let mut requests = visit_requests("r1");
    requests[3].result = Some(snapshot("r1", "closed", 3, 4, &[]));
    assert_eq!(
        rules(&history(vec![visit("r1")], requests)),
        [Rule::AcknowledgedChange]
    );
}

#[test]
fn write_at_an_older_epoch_is_reported() {
    let mut room = visit("r1");
    for event in &mut room.events[..3] {
        event.epoch = 2;
    }
    assert_eq!(
        rules(&history(vec![room], visit_requests("r1"))),
        [Rule::FencedWrite]
    );
}

#[test]
fn event_after_close_is_reported() {
    let mut room = visit("r1");
    room.events
        .push(by(event(6, "participant.joined", 5, 400), "acc2"));
    room.snapshot = Some(snapshot("r1", "closed", 5, 6, &[]));
    assert!(rules(&history(vec![room], visit_requests("r1"))).contains(&Rule::Reopened));
}

#[test]
fn room_open_after_seen_closed_reported() {
    let mut requests = visit_requests("r1");
    let mut stale = request(
        5,
        "r1",
        Op::Get,
        (400, 410),
        Some(snapshot("r1", "open", 3, 4, &[])),
    );
    stale.outcome = Outcome::Ok;
    requests.push(stale);
    let violations = check(&history(vec![visit("r1")], requests)).unwrap();
    let reopened = violations
        .iter()
        .find(|v| v.rule == Rule::Reopened)
        .expect("the read after the close is reported");
    assert_eq!(reopened.requests, [4, 5]);
}

#[test]
fn opening_twice_breaks_state_path() {
    let mut room = visit("r1");
    room.events.insert(2, event(3, "room.opened", 1, 50));
    for (index, event) in room.events.iter_mut().enumerate() {
        event.seq = index as u64 + 1;
    }
    room.snapshot = Some(snapshot("r1", "closed", 4, 6, &[]));
    assert!(rules(&history(vec![room], Vec::new())).contains(&Rule::StatePath));
}

/// Builds a room without joins, with a 1 s unused timeout, closed at
/// `close_ms`.
fn unused_room(close_ms: Option<i64>) -> FinalRoom {
    let mut events = vec![
        event(1, "room.created", 1, 0),
        event(2, "room.opened", 1, 0),
    ];
    let mut room_snapshot = snapshot("r2", "open", 1, 2, &[]);
    if let Some(close_ms) = close_ms {
        events.push(because(
            event(3, "room.closed", 2, close_ms),
            "unused_timeout",
        ));
        room_snapshot = snapshot("r2", "closed", 2, 3, &[]);
    }
    FinalRoom {
        room: "r2".into(),
        org: "other".into(),
        snapshot: Some(room_snapshot),
        max_participants: 2,
        unused_timeout: 1,
        empty_timeout: 300,
        max_duration: None,
        events,
    }
}

#[test]
fn timer_within_its_bound_is_fine() {
    assert_eq!(
        rules(&history(vec![unused_room(Some(5_900))], Vec::new())),
        []
    );
}

#[test]
fn timer_past_its_bound_is_reported() {
    assert_eq!(
        rules(&history(vec![unused_room(Some(6_100))], Vec::new())),
        [Rule::LateTimer]
    );
}

#[test]
fn redis_outage_extends_the_bound() {
    let mut entries = history(vec![unused_room(Some(6_100))], Vec::new());
    entries.push(Entry::Fault(FaultRecord {
        id: 1,
        kind: FaultKind::RestartRedis,
        node: None,
        start: at(2_000),
        end: at(3_000),
        detail: String::new(),
    }));
    assert_eq!(rules(&entries), []);
}

#[test]
fn timer_that_never_fired_is_reported() {
    assert_eq!(
        rules(&history(vec![unused_room(None)], Vec::new())),
        [Rule::LateTimer]
    );
}

#[test]
fn timer_before_its_deadline_is_reported() {
    assert_eq!(
        rules(&history(vec![unused_room(Some(500))], Vec::new())),
        [Rule::EarlyTimer]
    );
}

#[test]
fn gap_in_the_log_is_reported() {
    let mut room = visit("r1");
    room.events.remove(1);
    assert!(rules(&history(vec![room], Vec::new())).contains(&Rule::LogGap));
}

fn watch(seqs: &[u64], log: &FinalRoom) -> Entry {
    Entry::Watch(WatchRecord {
        watcher: 7,
        room: log.room.clone(),
        from_seq: 1,
        start: at(0),
        end: at(400),
        streams: 2,
        events: seqs
            .iter()
            .map(|&seq| log.events[seq as usize - 1].clone())
            .collect(),
    })
}

#[test]
fn watcher_that_saw_every_event_once_is_fine() {
    let room = visit("r1");
    let mut entries = history(vec![room.clone()], visit_requests("r1"));
    entries.push(watch(&[1, 2, 3, 4, 5], &room));
    assert_eq!(rules(&entries), []);
}

#[test]
fn watcher_gap_duplicate_and_wrong_event_are_reported() {
    let room = visit("r1");
    for seqs in [&[1, 2, 4, 5][..], &[1, 2, 2, 3]] {
        let mut entries = history(vec![room.clone()], visit_requests("r1"));
        entries.push(watch(seqs, &room));
        assert_eq!(rules(&entries), [Rule::WatchGap], "watcher saw {seqs:?}");
    }

    let mut entries = history(vec![room.clone()], visit_requests("r1"));
    let mut wrong = watch(&[1, 2, 3], &room);
    if let Entry::Watch(record) = &mut wrong {
        record.events[2].epoch = 9;
    }
    entries.push(wrong);
    assert_eq!(rules(&entries), [Rule::WatchGap]);
}

#[test]
fn too_many_participants_are_reported() {
    let mut room = visit("r1");
    room.max_participants = 1;
    room.events
        .insert(3, by(event(4, "participant.joined", 3, 150), "acc2"));
    room.events
        .insert(5, by(event(6, "participant.left", 5, 250), "acc2"));
    for (index, event) in room.events.iter_mut().enumerate() {
        event.seq = index as u64 + 1;
        event.version = index.max(1) as u64;
    }
    let last = room.events.len() as u64;
    room.snapshot = Some(snapshot("r1", "closed", last - 1, last, &[]));
    assert_eq!(
        rules(&history(vec![room], Vec::new())),
        [Rule::MaxParticipants]
    );
}

#[test]
fn too_many_open_rooms_reported() {
    let rooms: Vec<FinalRoom> = ["a", "b", "c"].iter().map(|&room| visit(room)).collect();
    let requests: Vec<RequestRecord> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(index, &room)| {
            let mut create = visit_requests(room).remove(0);
            create.id = index as u64 + 1;
            create
        })
        .collect();
    assert_eq!(
        rules(&history(rooms.clone(), requests.clone())),
        [Rule::MaxOpenRooms]
    );

    // The same three rooms one after another stay within the quota.
    let mut rooms = rooms;
    let mut requests = requests;
    for (index, (room, create)) in rooms.iter_mut().zip(&mut requests).enumerate() {
        let shift = index as i64 * 1_000;
        for event in &mut room.events {
            event.at += TimeDelta::milliseconds(shift);
        }
        create.start += TimeDelta::milliseconds(shift);
        create.end += TimeDelta::milliseconds(shift);
    }
    assert_eq!(rules(&history(rooms, requests)), []);
}

#[test]
fn room_gone_without_a_delete_is_reported() {
    let mut room = visit("r1");
    room.snapshot = None;
    room.events.clear();
    assert_eq!(
        rules(&history(vec![room.clone()], visit_requests("r1"))),
        [Rule::AcknowledgedChange]
    );

    let mut requests = visit_requests("r1");
    requests.push(request(5, "r1", Op::Delete, (400, 410), None));
    assert_eq!(rules(&history(vec![room], requests)), []);
}

#[test]
fn acknowledged_delete_of_existing_room_reported() {
    let mut requests = visit_requests("r1");
    requests.push(request(5, "r1", Op::Delete, (400, 410), None));
    let violations = check(&history(vec![visit("r1")], requests)).unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].requests, [5]);
}

#[test]
fn deleted_room_counts_until_its_earliest_possible_close() {
    // Three rooms of the limited org; the first was closed on request and
    // then deleted, so its log is gone. It stopped counting when the close
    // started, before the third room was made and while the second was
    // still open.
    let mut rooms: Vec<FinalRoom> = ["a", "b", "c"].iter().map(|&room| visit(room)).collect();
    rooms[0].snapshot = None;
    rooms[0].events.clear();
    for event in &mut rooms[2].events {
        event.at += TimeDelta::milliseconds(150);
    }
    let mut requests: Vec<RequestRecord> = Vec::new();
    for (index, room) in ["a", "b", "c"].iter().enumerate() {
        let mut create = visit_requests(room).remove(0);
        create.id = index as u64 + 1;
        if index == 2 {
            create.start += TimeDelta::milliseconds(150);
            create.end += TimeDelta::milliseconds(150);
        }
        requests.push(create);
    }
    requests.push(request(
        4,
        "a",
        Op::Close,
        (100, 110),
        Some(snapshot("a", "closed", 4, 5, &[])),
    ));
    requests.push(request(5, "a", Op::Delete, (2_000, 2_010), None));
    assert_eq!(rules(&history(rooms.clone(), requests.clone())), []);

    // Without the close, the deleted room counts until its delete.
    requests.remove(3);
    assert_eq!(rules(&history(rooms, requests)), [Rule::MaxOpenRooms]);
}
