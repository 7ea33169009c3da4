//! The `roomd.v1.Chaos` service: fault injection for chaos tests, served
//! only when the node runs with `--enable-chaos`. Every call acts on this
//! node's own actors and is never forwarded.

use roomd_actors::RoomService;
use roomd_model::{Principal, RoomError};
use roomd_proto::v1::chaos_server::Chaos;
use roomd_proto::v1::{
    KillRegistryRequest, KillRegistryResponse, KillRoomActorRequest, KillRoomActorResponse,
    KillRoomActorsRequest, KillRoomActorsResponse,
};
use tonic::{Request, Response, Status};
use tracing::warn;

use super::{caller, room_id};
use crate::fault;

/// Maximum number of room actors one `KillRoomActors` call kills.
const MAX_KILLS: u32 = 10_000;

pub struct ChaosApi {
    service: RoomService,
}

impl ChaosApi {
    pub fn new(service: RoomService) -> Self {
        ChaosApi { service }
    }
}

/// Lets only the calling service itself through.
fn authorize<T>(request: &Request<T>, operation: &str) -> Result<(), Status> {
    if caller(request)?.principal == Principal::Service {
        return Ok(());
    }
    Err(fault::status(RoomError::ChaosAccessDenied {
        operation: operation.to_owned(),
    }))
}

#[tonic::async_trait]
impl Chaos for ChaosApi {
    async fn kill_room_actor(
        &self,
        request: Request<KillRoomActorRequest>,
    ) -> Result<Response<KillRoomActorResponse>, Status> {
        authorize(&request, "KillRoomActor")?;
        let room_id = room_id(&request.get_ref().room_id)?;

        let killed = self.service.kill_room(room_id);
        warn!(%room_id, killed, "chaos: killed a room actor");
        Ok(Response::new(KillRoomActorResponse { killed }))
    }

    async fn kill_room_actors(
        &self,
        request: Request<KillRoomActorsRequest>,
    ) -> Result<Response<KillRoomActorsResponse>, Status> {
        authorize(&request, "KillRoomActors")?;
        let count = request.get_ref().count;
        if count > MAX_KILLS {
            return Err(fault::status(RoomError::validation(
                "count",
                format!("is {count}; the maximum is {MAX_KILLS}"),
            )));
        }

        let killed = self.service.kill_random_rooms(count as usize);
        warn!(
            requested = count,
            killed = killed.len(),
            "chaos: killed room actors"
        );
        Ok(Response::new(KillRoomActorsResponse {
            room_ids: killed.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn kill_registry(
        &self,
        request: Request<KillRegistryRequest>,
    ) -> Result<Response<KillRegistryResponse>, Status> {
        authorize(&request, "KillRegistry")?;

        let rooms = self.service.kill_registry();
        warn!(rooms, "chaos: killed the room registry");
        Ok(Response::new(KillRegistryResponse {
            rooms: u32::try_from(rooms).unwrap_or(u32::MAX),
        }))
    }
}
