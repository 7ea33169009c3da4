//! The gRPC client side of the benchmarks: connections, request metadata,
//! and the GetRoom and CreateRoom workers.

use std::sync::Arc;

use roomd_proto::v1::GetRoomRequest;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_server::caller::{ACCOUNT_HEADER, ORG_HEADER};
use tonic::Request;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::cli::LoadArgs;
use crate::load;
use crate::rooms::{self, ORG, OWNER};

/// Opens ceil(concurrency / workers per connection) HTTP/2 connections.
pub async fn connect(address: &str, load: &LoadArgs) -> Result<Vec<Channel>, String> {
    let connections = load.concurrency.div_ceil(load.workers_per_connection);
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("invalid server address {address}: {e}"))?;
    let mut channels = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        // Each connect() opens its own connection; clones of a Channel
        // share one.
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

pub fn client(channels: &[Channel], worker: usize, load: &LoadArgs) -> RoomsClient<Channel> {
    let connection = worker / load.workers_per_connection as usize;
    RoomsClient::new(channels[connection].clone())
}

/// Builds a request that acts for `account` in the benchmark org.
pub fn request<T>(message: T, account: AsciiMetadataValue) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(ORG_HEADER, MetadataValue::from_static(ORG));
    request.metadata_mut().insert(ACCOUNT_HEADER, account);
    request
}

pub async fn fetch_room(channel: &Channel, room_id: &str) -> Result<roomd_proto::v1::Room, String> {
    let message = GetRoomRequest {
        room_id: room_id.to_owned(),
    };
    RoomsClient::new(channel.clone())
        .get_room(request(message, MetadataValue::from_static(OWNER)))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("cannot read back room {room_id}: {status}"))
}

pub struct GetWorker {
    client: RoomsClient<Channel>,
    room_ids: Arc<[String]>,
    next: usize,
    owner: AsciiMetadataValue,
}

pub fn get_workers(
    channels: &[Channel],
    room_ids: &Arc<[String]>,
    load: &LoadArgs,
) -> Vec<GetWorker> {
    (0..load.concurrency as usize)
        .map(|index| GetWorker {
            client: client(channels, index, load),
            room_ids: room_ids.clone(),
            // Spread the workers over the rooms so that they do not queue on
            // one room actor.
            next: index * room_ids.len() / load.concurrency as usize,
            owner: MetadataValue::from_static(OWNER),
        })
        .collect()
}

impl load::Operation for GetWorker {
    async fn call(&mut self) -> Result<(), String> {
        let room_id = self.room_ids[self.next % self.room_ids.len()].clone();
        self.next += 1;
        let message = GetRoomRequest { room_id };
        self.client
            .get_room(request(message, self.owner.clone()))
            .await
            .map(drop)
            .map_err(|status| format!("GetRoom failed: {status}"))
    }
}

pub struct CreateWorker {
    client: RoomsClient<Channel>,
    owner: AsciiMetadataValue,
}

/// Builds one CreateRoom worker per client worker of `load`.
pub fn create_workers(channels: &[Channel], load: &LoadArgs) -> Vec<CreateWorker> {
    (0..load.concurrency as usize)
        .map(|index| CreateWorker {
            client: client(channels, index, load),
            owner: MetadataValue::from_static(OWNER),
        })
        .collect()
}

impl load::Operation for CreateWorker {
    async fn call(&mut self) -> Result<(), String> {
        self.client
            .create_room(request(rooms::create_request(), self.owner.clone()))
            .await
            .map(drop)
            .map_err(|status| format!("CreateRoom failed: {status}"))
    }
}
