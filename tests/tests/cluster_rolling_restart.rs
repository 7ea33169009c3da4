//! A rolling restart of a three-node cluster under steady load. Each node
//! in turn gets SIGTERM, drains (hands its rooms to the others), exits with
//! status 0 and starts again. Meanwhile clients keep creating, reading,
//! joining, leaving and updating rooms through all nodes, and retry with
//! backoff both UNAVAILABLE and a request whose connection closed under it
//! (see `RetryPolicy::retry_transport_errors`). No request may fail for
//! good, and every room keeps its last acknowledged version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{CreateRoomRequest, Room};
use roomd_tests::cluster_client::{RetryPolicy, lazy_channel, retry_unavailable};
use roomd_tests::{
    Caller, Cluster, get_request, join_request, leave_request, open_room, update_request,
};
use tonic::transport::Channel;
use tonic::{Response, Status};

const ORG: &str = "clinic-rolling";
const CLIENTS: usize = 8;
/// How long the load runs before the first restart, between restarts and
/// after the last one.
const STEADY_LOAD: Duration = Duration::from_millis(1_500);
/// How long a node may take to drain and exit after SIGTERM: its
/// `--shutdown-grace` of 5 s plus the hand-off.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn service() -> Caller {
    Caller::service(ORG)
}

/// The public addresses of the nodes as channels, replaced when a node
/// restarts on new ports, and a round-robin counter over them.
struct Nodes {
    channels: RwLock<Vec<Channel>>,
    next: AtomicUsize,
}

impl Nodes {
    fn client(&self) -> RoomsClient<Channel> {
        let channels = self.channels.read().unwrap();
        let index = self.next.fetch_add(1, Ordering::Relaxed) % channels.len();
        RoomsClient::new(channels[index].clone())
    }

    fn replace(&self, index: usize, channel: Channel) {
        self.channels.write().unwrap()[index] = channel;
    }
}

/// What the clients saw, shared by all of them.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    retries: AtomicU64,
    /// Requests that exhausted their retries or got another fault, and
    /// reads that did not return the last acknowledged version.
    failures: Mutex<Vec<String>>,
    /// Last acknowledged state of every room whose requests were all
    /// acknowledged.
    rooms: Mutex<HashMap<String, Room>>,
}

impl Tally {
    fn fail(&self, failure: String) {
        self.failures.lock().unwrap().push(failure);
    }
}

/// Describes a failed call: its code and message, and whether the status
/// came from a roomd node or from the client's own connection (then it
/// has a transport error as its source).
fn describe(status: &Status) -> String {
    match std::error::Error::source(status) {
        Some(source) => format!(
            "{:?} {:?} on the client's connection: {source:?}",
            status.code(),
            status.message()
        ),
        None => format!(
            "{:?} {:?} returned by a roomd node, with metadata {:?}",
            status.code(),
            status.message(),
            status.metadata()
        ),
    }
}

/// Sends a request through the next node, and on UNAVAILABLE through the
/// node after it, as [`RetryPolicy::default`] allows.
async fn call<F, Fut>(nodes: &Nodes, tally: &Tally, what: &str, send: F) -> Option<Room>
where
    F: Fn(RoomsClient<Channel>) -> Fut,
    Fut: Future<Output = Result<Response<Room>, Status>>,
{
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let retried = retry_unavailable(&RetryPolicy::default(), |_| send(nodes.client())).await;
    tally
        .retries
        .fetch_add(u64::from(retried.retries), Ordering::Relaxed);
    match retried.result {
        Ok(room) => Some(room),
        Err(status) => {
            tally.fail(format!(
                "{what} failed after {} retries: {}",
                retried.retries,
                describe(&status)
            ));
            None
        }
    }
}

/// Runs one client until `stop` is set: each iteration creates a room,
/// reads it, joins, leaves and relabels it, each request through the next
/// node.
async fn run_client(client: usize, nodes: Arc<Nodes>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let account = format!("client-{client}");
    let mut iteration = 0;
    while !stop.load(Ordering::Relaxed) {
        iteration += 1;
        let label = format!("Client {client} room {iteration}");
        let create = CreateRoomRequest {
            // A retried create returns the room that the first try made.
            request_id: format!("client-{client}-{iteration}"),
            ..open_room(&label, &[])
        };
        let Some(room) = call(&nodes, &tally, &format!("create {label}"), |mut rooms| {
            let request = service().request(create.clone());
            async move { rooms.create_room(request).await }
        })
        .await
        else {
            continue;
        };
        let room_id = room.id.clone();
        let mut last = room;
        let mut acknowledged_all = true;

        let Some(read) = call(&nodes, &tally, &format!("get {room_id}"), |mut rooms| {
            let request = service().request(get_request(&room_id));
            async move { rooms.get_room(request).await }
        })
        .await
        else {
            continue;
        };
        if read.version != last.version {
            tally.fail(format!(
                "get {room_id} returned version {}, but version {} was acknowledged",
                read.version, last.version
            ));
        }

        let steps: [(&str, String); 3] = [
            ("join", String::new()),
            ("leave", String::new()),
            (
                "update",
                format!(r#"{{"$set":{{"label":"{label}, updated"}}}}"#),
            ),
        ];
        for (step, update) in steps {
            let what = format!("{step} {room_id}");
            let changed = call(&nodes, &tally, &what, |mut rooms| {
                let room_id = room_id.clone();
                let account = account.clone();
                let update = update.clone();
                async move {
                    match step {
                        "join" => {
                            rooms
                                .join_room(service().request(join_request(&room_id, &account)))
                                .await
                        }
                        "leave" => {
                            rooms
                                .leave_room(service().request(leave_request(&room_id, &account)))
                                .await
                        }
                        _ => {
                            rooms
                                .update_room(service().request(update_request(&room_id, &update)))
                                .await
                        }
                    }
                }
            })
            .await;
            match changed {
                Some(room) if room.version > last.version => last = room,
                Some(room) => tally.fail(format!(
                    "{what} returned version {}, not above the acknowledged {}",
                    room.version, last.version
                )),
                None => {
                    // The failed request may or may not have applied, so
                    // this room's last version is unknown.
                    acknowledged_all = false;
                    break;
                }
            }
        }
        if acknowledged_all {
            tally.rooms.lock().unwrap().insert(room_id, last);
        }
    }
}

#[tokio::test]
async fn rolling_restart_fails_no_request() {
    let mut cluster = Cluster::builder()
        .nodes(3)
        .args(&["--shutdown-grace", "5"])
        .start()
        .await;
    let nodes = Arc::new(Nodes {
        channels: RwLock::new(
            cluster
                .nodes()
                .iter()
                .map(|node| lazy_channel(node.address()))
                .collect(),
        ),
        next: AtomicUsize::new(0),
    });
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            tokio::spawn(run_client(
                client,
                nodes.clone(),
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(STEADY_LOAD).await;
    for index in 0..cluster.len() {
        let started = Instant::now();
        let requests_before = tally.requests.load(Ordering::Relaxed);
        cluster.node_mut(index).sigterm();
        let status = cluster.node_mut(index).wait_exit(EXIT_TIMEOUT).await;
        let exited_after = started.elapsed();
        assert!(
            status.success(),
            "node {index} exited with {status} after SIGTERM:\n{}",
            cluster.node(index).log()
        );
        cluster.node_mut(index).restart().await;
        nodes.replace(index, lazy_channel(cluster.node(index).address()));
        println!(
            "node {index}: exited {exited_after:?} after SIGTERM, serving again after {:?}; \
             {} requests meanwhile",
            started.elapsed(),
            tally.requests.load(Ordering::Relaxed) - requests_before
        );
        tokio::time::sleep(STEADY_LOAD).await;
    }

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client task panicked");
    }

    let requests = tally.requests.load(Ordering::Relaxed);
    let retries = tally.retries.load(Ordering::Relaxed);
    let failures = tally.failures.lock().unwrap().clone();
    println!(
        "{requests} requests, {retries} retries, {} failures",
        failures.len()
    );

    let rooms = tally.rooms.lock().unwrap().clone();
    assert!(
        rooms.len() >= CLIENTS,
        "only {} rooms were created",
        rooms.len()
    );
    let mut reader = cluster.node(0).rooms_client().await;
    for (room_id, acknowledged) in &rooms {
        let read = roomd_tests::get_room(&mut reader, &service(), room_id).await;
        assert_eq!(
            (read.version, &read.label),
            (acknowledged.version, &acknowledged.label),
            "room {room_id} after the rolling restart"
        );
    }

    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        cluster.logs()
    );
}
