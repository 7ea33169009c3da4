//! A watcher in a cluster resumes on another node after its own node dies.
//! It reconnects with the sequence number after the last event it saw and
//! gets the rest of the log, including what was committed while it was
//! away, with no gap and no duplicate.

use std::time::Duration;

use roomd_proto::v1::RoomEvent;
use roomd_tests::cluster_client::{live_node_id, stored_room_field};
use roomd_tests::{
    Caller, Cluster, all_events, close_room, create_room, join_room, next_events, open_room, seqs,
    update_request, watch_events,
};

const ORG: &str = "clinic-watch";
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn service() -> Caller {
    Caller::service(ORG)
}

#[tokio::test]
async fn watcher_resumes_on_another_node() {
    let mut cluster = Cluster::start(3).await;
    let mut redis = cluster.redis().client().await;
    let mut owner = cluster.node(0).rooms_client().await;
    let owner_id = live_node_id(&mut redis, cluster.node(0)).await;

    let room = create_room(
        &mut owner,
        &service(),
        open_room("Watched", &["account.public.update"]),
    )
    .await;
    let stored_owner = stored_room_field(&mut redis, &room.id, "owner").await;
    assert_eq!(stored_owner.as_deref(), Some(owner_id.as_str()));

    // The watcher follows the room through node 1, which does not own it.
    let mut through_b = cluster.node(1).rooms_client().await;
    let mut stream = watch_events(&mut through_b, &service(), &room.id, 1).await;
    let first = next_events(&mut stream, 2, EVENT_TIMEOUT).await;
    join_room(&mut owner, &Caller::account(ORG, "acc1"), &room.id).await;
    let joined = next_events(&mut stream, 1, EVENT_TIMEOUT).await;
    let mut seen: Vec<RoomEvent> = first.into_iter().chain(joined).collect();
    assert_eq!(seqs(&seen), vec![1, 2, 3]);

    // Node 1 dies; changes go on through the owner meanwhile.
    cluster.node_mut(1).sigkill().await;
    let ended = tokio::time::timeout(Duration::from_secs(1), stream.message()).await;
    assert!(
        !matches!(ended, Ok(Ok(Some(_)))),
        "the stream of a killed node delivered another event: {ended:?}"
    );
    owner
        .update_room(service().request(update_request(&room.id, r#"{"$set":{"label":"Renamed"}}"#)))
        .await
        .expect("update through the owner");
    join_room(&mut owner, &Caller::account(ORG, "acc2"), &room.id).await;

    // The watcher resumes on node 2 from the sequence after its last one.
    let last_seq = seen.last().expect("events seen").seq;
    let mut through_c = cluster.node(2).rooms_client().await;
    let mut resumed = watch_events(&mut through_c, &service(), &room.id, last_seq + 1).await;
    let caught_up = next_events(&mut resumed, 2, EVENT_TIMEOUT).await;
    close_room(&mut owner, &service(), &room.id).await;
    let rest = all_events(&mut resumed, EVENT_TIMEOUT).await;
    seen.extend(caught_up);
    seen.extend(rest);

    let names: Vec<&str> = seen.iter().map(|event| event.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "room.created",
            "room.opened",
            "participant.joined",
            "room.updated",
            "participant.joined",
            "participant.left",
            "participant.left",
            "room.closed",
        ]
    );
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seqs(&seen), expected, "gapless and duplicate-free");
}
