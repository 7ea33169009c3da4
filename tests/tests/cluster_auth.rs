//! Authentication in a cluster of two `roomd` processes: callers present
//! service tokens or JWTs on the public port, nodes present the node token
//! on the internal port, and a forwarded request acts for the principal
//! that the receiving node resolved. With TLS, nodes check each other's
//! certificates when they forward.

use std::collections::HashMap;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use roomd_proto::v1::Room;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_tests::cluster_client::{live_node_id, live_nodes, stored_room};
use roomd_tests::jwt::claims;
use roomd_tests::tls::write_file;
use roomd_tests::{
    Caller, Cluster, JwtKeys, RedisServer, RoomdProcess, TestCa, close_request, connect,
    create_room, expect_fault, get_request, open_room, update_request,
};
use serde_json::json;
use tonic::Code;

const ORG: &str = "clinic-cluster-auth";
const SERVICE_TOKEN: &str = "scheduler-token-0123456789abcdef";
const NODE_TOKEN: &str = "node-token-0123456789abcdef-nodes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_auth_forwards_with_node_token() {
    let dir = tempfile::tempdir().expect("create a folder");
    let tokens = write_file(
        dir.path(),
        "tokens",
        &format!("scheduler {SERVICE_TOKEN}\n"),
    );
    let node_token = write_file(dir.path(), "node-token", &format!("{NODE_TOKEN}\n"));
    let jwt = JwtKeys::generate(dir.path());
    let mut args = vec![
        "--service-tokens-file".to_owned(),
        tokens.display().to_string(),
        "--node-token-file".to_owned(),
        node_token.display().to_string(),
    ];
    args.extend(jwt.roomd_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::builder().nodes(2).args(&args).start().await;

    let service = Caller::service(ORG).with_token(SERVICE_TOKEN);
    let mut redis = cluster.redis().client().await;
    let node_ids = [
        live_node_id(&mut redis, cluster.node(0)).await,
        live_node_id(&mut redis, cluster.node(1)).await,
    ];

    // Create rooms through both nodes until each node owns one.
    let mut owned: HashMap<String, Room> = HashMap::new();
    for attempt in 0..8 {
        let mut rooms = cluster.node(attempt % 2).rooms_client().await;
        let acl = ["account.acc1.read"];
        let room = create_room(&mut rooms, &service, open_room("Forwarded", &acl)).await;
        let stored = stored_room(&mut redis, &room.id)
            .await
            .expect("the room is stored");
        owned.entry(stored.owner).or_insert(room);
    }
    let remote = owned
        .get(&node_ids[1])
        .unwrap_or_else(|| panic!("node 1 owns none of the rooms: {owned:?}"))
        .clone();

    // Node 0 forwards to node 1 with the node token and the principal.
    let mut entry = cluster.node(0).rooms_client().await;
    let updated = entry
        .update_room(service.request(update_request(&remote.id, r#"{"$set":{"label":"Moved"}}"#)))
        .await
        .unwrap_or_else(|status| panic!("forwarded update: {status:?}\n{}", cluster.logs()))
        .into_inner();
    assert_eq!(updated.label, "Moved");

    let acc1 = jwt.sign(Algorithm::HS256, &claims(json!({"account": "acc1"})));
    let as_acc1 = Caller::service(ORG).with_token(&acc1);
    let read = entry
        .get_room(as_acc1.request(get_request(&remote.id)))
        .await;
    assert_eq!(read.expect("acc1 may read").into_inner().label, "Moved");
    let closed = entry
        .close_room(as_acc1.request(close_request(&remote.id)))
        .await;
    expect_fault(closed).assert_for_room(Code::PermissionDenied, "accessDenied.update", &remote.id);

    // The internal port takes the node token only.
    let mut internal = RoomsClient::new(connect(cluster.node(1).internal_address()).await);
    let rejected = [
        Caller::service(ORG),
        Caller::service(ORG).with_token(SERVICE_TOKEN),
        Caller::service(ORG).with_token(&acc1),
        Caller::account(ORG, "acc1"),
    ];
    for caller in rejected {
        let closed = internal
            .close_room(caller.request(close_request(&remote.id)))
            .await;
        expect_fault(closed).assert_is(Code::Unauthenticated, "unauthenticated", &[]);
    }
    let as_node = Caller::service(ORG).with_token(NODE_TOKEN);
    let read = internal
        .get_room(as_node.request(get_request(&remote.id)))
        .await
        .expect("a node may call the internal port")
        .into_inner();
    assert_eq!(
        read.state,
        roomd_proto::v1::RoomState::Open as i32,
        "nothing closed the room"
    );

    // The node token is no credential on the public port.
    let as_node_outside = entry
        .get_room(as_node.request(get_request(&remote.id)))
        .await;
    expect_fault(as_node_outside).assert_is(Code::Unauthenticated, "unauthenticated", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_auth_forwards_over_tls() {
    let ca = TestCa::new("cluster test CA");
    let node_cert = ca.issue_server("node");
    let tokens = write_file(ca.dir(), "tokens", &format!("scheduler {SERVICE_TOKEN}\n"));
    let node_token = write_file(ca.dir(), "node-token", &format!("{NODE_TOKEN}\n"));
    let redis = RedisServer::spawn().await;
    let path = |p: &PathBuf| p.display().to_string();
    let args = vec![
        "--redis-url".to_owned(),
        redis.url(),
        "--tls-cert".to_owned(),
        path(&node_cert.cert),
        "--tls-key".to_owned(),
        path(&node_cert.key),
        "--tls-peer-ca".to_owned(),
        path(&ca.ca_path()),
        "--service-tokens-file".to_owned(),
        path(&tokens),
        "--node-token-file".to_owned(),
        path(&node_token),
    ];
    let nodes = [
        RoomdProcess::spawn_tls(&args, ca.client_tls()).await,
        RoomdProcess::spawn_tls(&args, ca.client_tls()).await,
    ];

    // Create rooms through both nodes until the second node owns one.
    let service = Caller::service(ORG).with_token(SERVICE_TOKEN);
    let mut redis_client = redis.client().await;
    let mut remote = None;
    for attempt in 0..8 {
        let mut rooms = nodes[attempt % 2].rooms_client().await;
        let room = create_room(&mut rooms, &service, open_room("Over TLS", &[])).await;
        let stored = stored_room(&mut redis_client, &room.id)
            .await
            .expect("the room is stored");
        let second = nodes[1].internal_address.to_string();
        if live_nodes(&mut redis_client).await.get(&stored.owner) == Some(&second) {
            remote = Some(room);
            break;
        }
    }
    let remote = remote.expect("the second node owns none of the rooms");

    let mut entry = nodes[0].rooms_client().await;
    let updated = entry
        .update_room(service.request(update_request(
            &remote.id,
            r#"{"$set":{"label":"Forwarded over TLS"}}"#,
        )))
        .await
        .unwrap_or_else(|status| {
            panic!(
                "forwarded update: {status:?}\n{}\n{}",
                nodes[0].log(),
                nodes[1].log()
            )
        })
        .into_inner();
    assert_eq!(updated.label, "Forwarded over TLS");
}
