//! `maxParticipants` under concurrent joins over gRPC.

use roomd_proto::v1::{ListParticipantsRequest, ParticipantStatus};
use roomd_tests::{Caller, Fault, TestNode, get_room, join_request, open_room_with_max};
use tonic::Code;

const ORG: &str = "clinic1";
const JOINERS: usize = 50;

#[tokio::test]
async fn concurrent_joins_respect_max_participants() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let service = Caller::service(ORG);
    let create = open_room_with_max("Visit", &["account.public.read"], 2);
    let room = node.create_room(&service, create).await;

    let mut joins = tokio::task::JoinSet::new();
    for i in 0..JOINERS {
        let mut rooms = node.rooms.clone();
        let account = format!("acc{i}");
        let request = Caller::account(ORG, &account).request(join_request(&room.id, ""));
        joins.spawn(async move { (account, rooms.join_room(request).await) });
    }

    let mut joined = Vec::new();
    let mut rejected = 0;
    while let Some(outcome) = joins.join_next().await {
        let (account, result) = outcome.expect("join task panicked");
        match result {
            Ok(_) => joined.push(account),
            Err(status) => {
                let fault = Fault::from_status(&status);
                fault.assert_is(
                    Code::ResourceExhausted,
                    "limit.maxParticipants",
                    &[("roomId", &room.id), ("max", "2")],
                );
                rejected += 1;
            }
        }
    }
    assert_eq!(joined.len(), 2, "accounts that joined: {joined:?}");
    assert_eq!(rejected, JOINERS - 2);

    let participants = rooms
        .list_participants(service.request(ListParticipantsRequest {
            room_id: room.id.clone(),
        }))
        .await
        .expect("list participants")
        .into_inner()
        .participants;
    let mut connected: Vec<String> = participants
        .iter()
        .filter(|p| p.status == ParticipantStatus::Connected as i32)
        .map(|p| p.account.clone())
        .collect();
    connected.sort_unstable();
    joined.sort_unstable();
    assert_eq!(connected, joined);
    assert_eq!(
        participants.len(),
        2,
        "rejected joins left participants behind"
    );

    // Two accepted joins are two changes, no more.
    let after = get_room(&mut rooms, &service, &room.id).await;
    assert_eq!(after.version, room.version + 2);
    assert_eq!(after.last_seq, room.last_seq + 2);
}
