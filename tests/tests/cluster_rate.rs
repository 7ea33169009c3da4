//! The request rate in a cluster: a request that one node forwards to the
//! room's owner counts once, against the node that received it from the
//! client, and not again on the owner.

use roomd_tests::{Caller, Cluster, create_room, expect_fault, get_request, open_room};
use tonic::Code;

const ORG: &str = "clinic-rate";
/// Requests one caller may send to one node at once.
const BURST: usize = 3;

#[tokio::test]
async fn forwarded_requests_count_once() {
    let cluster = Cluster::builder()
        .nodes(2)
        .args(&["--rate-limit", "1", "--rate-burst", "3"])
        .start()
        .await;
    let mut first = cluster.node(0).rooms_client().await;
    let mut second = cluster.node(1).rooms_client().await;
    let room = create_room(
        &mut first,
        &Caller::service(ORG),
        open_room("Visit", &["account.reader.read"]),
    )
    .await;
    let reader = Caller::account(ORG, "reader");

    // One of the nodes owns the room, so the requests through the other one
    // are forwarded to it. Counted twice, the owner would reject some.
    for (node, rooms) in [(0, &mut first), (1, &mut second)] {
        for attempt in 1..=BURST {
            rooms
                .get_room(reader.request(get_request(&room.id)))
                .await
                .unwrap_or_else(|status| {
                    panic!("request {attempt} through node {node}: {status:?}")
                });
        }
    }

    for rooms in [&mut first, &mut second] {
        let over = rooms.get_room(reader.request(get_request(&room.id))).await;
        expect_fault(over).assert_is(Code::ResourceExhausted, "limit.rate", &[("max", "1")]);
    }
}
