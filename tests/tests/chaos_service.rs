//! The `roomd.v1.Chaos` fault-injection service of a real `roomd` process:
//! off unless `--enable-chaos` is given, open only to the calling service,
//! and its kills are survived with nothing lost.

use std::time::Duration;

use roomd_proto::v1::chaos_client::ChaosClient;
use roomd_proto::v1::{KillRegistryRequest, KillRoomActorRequest, KillRoomActorsRequest};
use roomd_tests::{
    Caller, RoomdProcess, create_room, eventually, expect_fault, get_room, join_request, open_room,
    open_room_with_max,
};
use tonic::Code;
use tonic::transport::Channel;

async fn chaos_client(process: &RoomdProcess) -> ChaosClient<Channel> {
    ChaosClient::connect(process.url())
        .await
        .expect("connect to roomd")
}

#[tokio::test]
async fn chaos_service_is_off_by_default() {
    let process = RoomdProcess::spawn(&[]).await;
    let mut chaos = chaos_client(&process).await;

    let status = chaos
        .kill_registry(Caller::service("clinic1").request(KillRegistryRequest {}))
        .await
        .expect_err("the chaos service must not be served without --enable-chaos");
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn chaos_service_rejects_acting_accounts() {
    let process = RoomdProcess::spawn(&["--enable-chaos"]).await;
    let mut chaos = chaos_client(&process).await;

    let fault = expect_fault(
        chaos
            .kill_registry(Caller::account("clinic1", "acc1").request(KillRegistryRequest {}))
            .await,
    );
    fault.assert_is(
        Code::PermissionDenied,
        "accessDenied.delete",
        &[("operation", "KillRegistry")],
    );
    let fault = expect_fault(
        chaos
            .kill_room_actors(
                Caller::service("clinic1").request(KillRoomActorsRequest { count: 1_000_000 }),
            )
            .await,
    );
    fault.assert_invalid("count");
    assert!(
        process.log().contains("CHAOS SERVICE ENABLED"),
        "the chaos service must be announced loudly:\n{}",
        process.log()
    );
}

#[tokio::test]
async fn killed_actors_and_registry_lose_nothing() {
    let process = RoomdProcess::spawn(&["--enable-chaos"]).await;
    let mut rooms = process.rooms_client().await;
    let mut chaos = chaos_client(&process).await;
    let caller = Caller::service("clinic1");
    let room = create_room(
        &mut rooms,
        &caller,
        open_room_with_max("Visit", &["account.public.read"], 3),
    )
    .await;
    rooms
        .join_room(caller.request(join_request(&room.id, "acc1")))
        .await
        .expect("acc1 joins");

    let killed = chaos
        .kill_room_actor(caller.request(KillRoomActorRequest {
            room_id: room.id.clone(),
        }))
        .await
        .expect("kill the room actor")
        .into_inner();
    assert!(killed.killed, "the room's actor was running");
    rooms
        .join_room(caller.request(join_request(&room.id, "acc2")))
        .await
        .expect("the restarted room takes a join");

    let killed = chaos
        .kill_registry(caller.request(KillRegistryRequest {}))
        .await
        .expect("kill the registry")
        .into_inner();
    assert_eq!(killed.rooms, 1);

    // The room comes back from the store once the new registry runs.
    let accounts = eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            let room = rooms
                .join_room(caller.request(join_request(&room.id, "acc3")))
                .await
                .map_err(|status| format!("join after the registry kill: {status:?}"))?
                .into_inner();
            Ok(room
                .participants
                .into_iter()
                .map(|p| p.account)
                .collect::<Vec<_>>())
        },
    )
    .await;
    assert_eq!(accounts, ["acc1", "acc2", "acc3"]);
    let made = create_room(&mut rooms, &caller, open_room("Second", &[])).await;
    assert_eq!(get_room(&mut rooms, &caller, &made.id).await.id, made.id);
    let log = process.log();
    assert!(
        log.contains("room registry failed; started a new one"),
        "the supervisor did not restart the registry:\n{log}"
    );
}
