//! The reference server: a bare tonic implementation of `roomd.v1.Rooms`
//! whose GetRoom returns one pre-built `Room` and whose other methods return
//! `UNIMPLEMENTED`. It shows what the transport alone costs on this machine.

use std::net::SocketAddr;

use roomd_proto::v1::rooms_server::{Rooms, RoomsServer};
use roomd_proto::v1::{
    CloseRoomRequest, CreateRoomRequest, DeleteRoomRequest, DeleteRoomResponse, FindRoomsRequest,
    FindRoomsResponse, GetRoomRequest, JoinRoomRequest, LeaveRoomRequest, ListParticipantsRequest,
    ListParticipantsResponse, Room, RoomEvent, UpdateRoomRequest, WatchRoomRequest,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// A running reference server. It stops on [`ReferenceServer::stop`] or
/// when dropped.
pub struct ReferenceServer {
    pub address: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ReferenceServer {
    /// Serves the bare handler on a free port of 127.0.0.1. Accepted
    /// sockets get `TCP_NODELAY`, as with tonic's own `Server::serve`.
    pub async fn start(room: Room) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1 for the reference server: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("cannot read the reference server's address: {e}"))?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .add_service(RoomsServer::new(BareRooms { room }))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Ok(ReferenceServer {
            address,
            shutdown,
            task,
        })
    }

    pub async fn stop(self) -> Result<(), String> {
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("reference server failed: {e}")),
            Err(e) => Err(format!("reference server task failed: {e}")),
        }
    }
}

struct BareRooms {
    room: Room,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the reference server implements only GetRoom",
    ))
}

#[tonic::async_trait]
impl Rooms for BareRooms {
    async fn get_room(&self, _request: Request<GetRoomRequest>) -> Result<Response<Room>, Status> {
        Ok(Response::new(self.room.clone()))
    }

    async fn create_room(
        &self,
        _request: Request<CreateRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        unimplemented()
    }

    async fn find_rooms(
        &self,
        _request: Request<FindRoomsRequest>,
    ) -> Result<Response<FindRoomsResponse>, Status> {
        unimplemented()
    }

    async fn update_room(
        &self,
        _request: Request<UpdateRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        unimplemented()
    }

    async fn close_room(
        &self,
        _request: Request<CloseRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        unimplemented()
    }

    async fn delete_room(
        &self,
        _request: Request<DeleteRoomRequest>,
    ) -> Result<Response<DeleteRoomResponse>, Status> {
        unimplemented()
    }

    async fn join_room(
        &self,
        _request: Request<JoinRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        unimplemented()
    }

    async fn leave_room(
        &self,
        _request: Request<LeaveRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        unimplemented()
    }

    async fn list_participants(
        &self,
        _request: Request<ListParticipantsRequest>,
    ) -> Result<Response<ListParticipantsResponse>, Status> {
        unimplemented()
    }

    type WatchRoomStream = tokio_stream::Empty<Result<RoomEvent, Status>>;

    async fn watch_room(
        &self,
        _request: Request<WatchRoomRequest>,
    ) -> Result<Response<Self::WatchRoomStream>, Status> {
        unimplemented()
    }
}
