//! The gRPC health check and server reflection of a node, and its
//! shutdown.

use std::time::Duration;

use roomd_tests::{
    Caller, DEFINITIONS_SERVICE, ROOMS_SERVICE, TestNode, create_room, next_events, open_room,
    seqs, watch_events,
};
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn health_reports_services_serving() {
    let node = TestNode::start().await;
    let mut health = HealthClient::new(node.channel());

    for service in ["", ROOMS_SERVICE, DEFINITIONS_SERVICE] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|status| panic!("health check of {service:?}: {status:?}"))
            .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }

    let unknown = health
        .check(HealthCheckRequest {
            service: "roomd.v1.Unknown".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_rooms_service() {
    let node = TestNode::start().await;
    let mut reflection = ServerReflectionClient::new(node.channel());

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("open the reflection stream")
        .into_inner();
    let response = responses
        .next()
        .await
        .expect("one reflection response")
        .expect("reflection response is not an error");

    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!(
            "expected a service list, got {:?}",
            response.message_response
        );
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&ROOMS_SERVICE), "services: {names:?}");
    assert!(names.contains(&DEFINITIONS_SERVICE), "services: {names:?}");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let node = TestNode::start().await;
    let address = node.address;
    node.shutdown().await.expect("server stops cleanly");

    let connected = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await;
    assert!(
        connected.is_err(),
        "the port still accepts connections after shutdown"
    );
}

#[tokio::test]
async fn shutdown_ends_open_watch() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let caller = Caller::service("clinic1");
    let room = create_room(&mut rooms, &caller, open_room("Visit", &[])).await;
    let mut stream = watch_events(&mut rooms, &caller, &room.id, 1).await;
    assert_eq!(
        seqs(&next_events(&mut stream, 2, Duration::from_secs(5)).await),
        [1, 2]
    );

    node.shutdown().await.expect("server stops cleanly");

    // The room stays open, so only the shutdown can end the stream. It
    // ends with a retryable fault that says where to resume.
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the watch stream is still open after shutdown");
    let status = ended.expect_err("the stream must end with a fault, not cleanly");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("sequence number 3"),
        "the fault names where to resume: {status:?}"
    );
}
