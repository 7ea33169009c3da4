//! The `roomd.v1.Rooms` service.
//!
//! The same service runs on the public port and, inside a cluster, on the
//! internal port. On the public port a request for a room that another node
//! owns is forwarded there (see [`super::forward`]); on the internal port
//! every request is served here.

use std::future::Future;
use std::pin::Pin;

use roomd_actors::{Command, RoomService};
use roomd_model::{ConfigurationInput, NewRoom, RoomError, RoomResult, SortField, UpdateDocument};
use roomd_proto::convert;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::rooms_server::Rooms;
use roomd_proto::v1::{
    CloseRoomRequest, CreateRoomRequest, DeleteRoomRequest, DeleteRoomResponse, FindRoomsRequest,
    FindRoomsResponse, GetRoomRequest, JoinRoomRequest, LeaveRoomRequest, ListParticipantsRequest,
    ListParticipantsResponse, Room, RoomConfigurationInput, RoomEvent, UpdateRoomRequest,
    WatchRoomRequest,
};
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::{debug, instrument, warn};

use super::forward::{self, Forwarder};
use super::{caller, non_empty, parse_room_id, room_id};
use crate::caller::Caller;
use crate::fault;

pub struct RoomsApi {
    service: RoomService,
    /// Set on the public port of a clustered node.
    forwarder: Option<Forwarder>,
}

impl RoomsApi {
    /// The service of a node that serves every request itself: a single
    /// node, or the internal port of a clustered one.
    pub fn new(service: RoomService) -> Self {
        RoomsApi {
            service,
            forwarder: None,
        }
    }

    /// Builds the public service of a clustered node, which forwards
    /// requests for other nodes' rooms.
    pub fn forwarding(service: RoomService, forwarder: Forwarder) -> Self {
        RoomsApi {
            service,
            forwarder: Some(forwarder),
        }
    }

    /// Serves a request for one room here, or, when another node owns the
    /// room, at that node.
    async fn routed<Req, Reply, Local, LocalFuture, Remote, RemoteFuture>(
        &self,
        request: Request<Req>,
        local: Local,
        remote: Remote,
    ) -> Result<Response<Reply>, Status>
    where
        Req: Clone,
        Local: Fn(Caller, Req) -> LocalFuture,
        LocalFuture: Future<Output = RoomResult<Reply>>,
        Remote: Fn(RoomsClient<Channel>, Request<Req>) -> RemoteFuture,
        RemoteFuture: Future<Output = Result<Response<Reply>, Status>>,
    {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let mut attempt = 1;
        loop {
            let fault = match local(caller.clone(), message.clone()).await {
                Ok(reply) => return Ok(Response::new(reply)),
                Err(fault) => fault,
            };
            let (Some(forwarder), RoomError::NotOwner { owner, room_id }) =
                (&self.forwarder, &fault)
            else {
                return Err(fault::status(fault));
            };

            if let Some(client) = forwarder.owner(owner.as_deref()).await {
                let owner = owner.as_deref().unwrap_or("any");
                debug!(%room_id, owner, attempt, "forwarding request to the room's owner");
                let forwarded = forwarder.request(&caller, message.clone())?;
                let status = match remote(client, forwarded).await {
                    Ok(reply) => return Ok(reply),
                    Err(status) => status,
                };
                if !forward::may_retry_elsewhere(&status) || attempt >= forward::ATTEMPTS {
                    return Err(forward::give_up(room_id, status));
                }
                // The owner may have moved on, or died: locate the room
                // afresh.
                if let Ok(id) = parse_room_id(room_id) {
                    self.service.forget_owner(id);
                }
                forwarder.peer_unreachable(&status).await;
                warn!(%room_id, owner, attempt, error = %status.message(), "forwarded request failed; locating the room again");
            } else if attempt >= forward::ATTEMPTS {
                return Err(fault::status(fault));
            } else if let Ok(id) = parse_room_id(room_id) {
                self.service.forget_owner(id);
            }
            forward::back_off(attempt).await;
            attempt += 1;
        }
    }

    async fn get(&self, caller: Caller, message: GetRoomRequest) -> RoomResult<Room> {
        let id = parse_room_id(&message.room_id)?;
        let room = self.service.get(&caller.org, &caller.principal, id).await?;
        Ok(convert::room(&room))
    }

    /// Applies a change to the room named by `room_id`.
    async fn apply(&self, caller: Caller, room_id: &str, command: Command) -> RoomResult<Room> {
        let id = parse_room_id(room_id)?;
        let room = self
            .service
            .command(&caller.org, &caller.principal, id, command)
            .await?;
        Ok(convert::room(&room))
    }

    async fn update(&self, caller: Caller, message: UpdateRoomRequest) -> RoomResult<Room> {
        parse_room_id(&message.room_id)?;
        let document = UpdateDocument::parse(&message.update_json)?;
        let command = Command::Update {
            document,
            expected_version: message.expected_version,
        };
        self.apply(caller, &message.room_id, command).await
    }

    async fn participants(
        &self,
        caller: Caller,
        message: ListParticipantsRequest,
    ) -> RoomResult<ListParticipantsResponse> {
        let id = parse_room_id(&message.room_id)?;
        let room = self.service.get(&caller.org, &caller.principal, id).await?;
        Ok(ListParticipantsResponse {
            participants: room.participants.iter().map(convert::participant).collect(),
        })
    }

    async fn create(&self, caller: &Caller, message: CreateRoomRequest) -> Result<Room, Status> {
        let new_room = NewRoom {
            label: message.label,
            acl: message.acl,
            owner: non_empty(message.owner),
            custom: message
                .custom
                .as_ref()
                .map(convert::struct_to_json_object)
                .unwrap_or_default(),
            configuration: configuration_input(message.configuration)?,
            open: message.open,
        };
        let request_id = non_empty(message.request_id);
        let room = self
            .service
            .create(
                &caller.org,
                &caller.principal,
                new_room,
                request_id.as_deref(),
            )
            .await
            .map_err(fault::status)?;
        Ok(convert::room(&room))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<RoomEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Rooms for RoomsApi {
    #[instrument(skip_all, fields(org, room_id))]
    async fn create_room(
        &self,
        request: Request<CreateRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        let caller = caller(&request)?;
        tracing::Span::current().record("org", caller.org.as_str());

        // A new room goes to the node with the fewest rooms. A node that
        // cannot take it is passed over for the next one, and this node
        // takes the room when it is the best choice left.
        if let Some(forwarder) = &self.forwarder {
            let mut failed = Vec::new();
            while let Some((node, mut client)) = forwarder.placement(&failed) {
                let forwarded = forwarder.request(&caller, request.get_ref().clone())?;
                let status = match client.create_room(forwarded).await {
                    Ok(reply) => {
                        tracing::Span::current().record("room_id", reply.get_ref().id.as_str());
                        return Ok(reply);
                    }
                    Err(status) => status,
                };
                if !forward::may_retry_elsewhere(&status) {
                    return Err(status);
                }
                warn!(node_id = %node, error = %status.message(), "placing a room on another node failed; trying the next one");
                failed.push(node);
                if failed.len() >= forward::ATTEMPTS as usize {
                    break;
                }
            }
        }

        let room = self.create(&caller, request.into_inner()).await?;
        tracing::Span::current().record("room_id", room.id.as_str());
        Ok(Response::new(room))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn get_room(&self, request: Request<GetRoomRequest>) -> Result<Response<Room>, Status> {
        self.routed(
            request,
            |caller, message| self.get(caller, message),
            |mut owner, request| async move { owner.get_room(request).await },
        )
        .await
    }

    #[instrument(skip_all)]
    async fn find_rooms(
        &self,
        request: Request<FindRoomsRequest>,
    ) -> Result<Response<FindRoomsResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let sort: Vec<SortField> = message
            .sort
            .into_iter()
            .map(|field| SortField {
                path: field.path,
                descending: field.descending,
            })
            .collect();
        let found = self
            .service
            .find(
                &caller.org,
                &caller.principal,
                &message.filter_json,
                &sort,
                message.limit,
                &message.page_token,
            )
            .await
            .map_err(fault::status)?;
        Ok(Response::new(FindRoomsResponse {
            rooms: found.rooms.iter().map(convert::room).collect(),
            next_page_token: found.next_page_token.unwrap_or_default(),
        }))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn update_room(
        &self,
        request: Request<UpdateRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        self.routed(
            request,
            |caller, message| self.update(caller, message),
            |mut owner, request| async move { owner.update_room(request).await },
        )
        .await
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn close_room(
        &self,
        request: Request<CloseRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        self.routed(
            request,
            |caller, message| async move {
                self.apply(caller, &message.room_id, Command::Close).await
            },
            |mut owner, request| async move { owner.close_room(request).await },
        )
        .await
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn delete_room(
        &self,
        request: Request<DeleteRoomRequest>,
    ) -> Result<Response<DeleteRoomResponse>, Status> {
        self.routed(
            request,
            |caller, message| async move {
                let room = self
                    .apply(caller, &message.room_id, Command::Delete)
                    .await?;
                Ok(DeleteRoomResponse { room: Some(room) })
            },
            |mut owner, request| async move { owner.delete_room(request).await },
        )
        .await
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn join_room(&self, request: Request<JoinRoomRequest>) -> Result<Response<Room>, Status> {
        self.routed(
            request,
            |caller, message| async move {
                let command = Command::Join {
                    account: non_empty(message.account),
                };
                self.apply(caller, &message.room_id, command).await
            },
            |mut owner, request| async move { owner.join_room(request).await },
        )
        .await
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn leave_room(
        &self,
        request: Request<LeaveRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        self.routed(
            request,
            |caller, message| async move {
                let command = Command::Leave {
                    account: non_empty(message.account),
                };
                self.apply(caller, &message.room_id, command).await
            },
            |mut owner, request| async move { owner.leave_room(request).await },
        )
        .await
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn list_participants(
        &self,
        request: Request<ListParticipantsRequest>,
    ) -> Result<Response<ListParticipantsResponse>, Status> {
        self.routed(
            request,
            |caller, message| self.participants(caller, message),
            |mut owner, request| async move { owner.list_participants(request).await },
        )
        .await
    }

    type WatchRoomStream = EventStream;

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn watch_room(
        &self,
        request: Request<WatchRoomRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let id = room_id(&message.room_id)?;
        let events = self
            .service
            .watch(
                &caller.org,
                &caller.principal,
                &caller.limit_key(),
                id,
                message.from_seq,
            )
            .await
            .map_err(fault::status)?;
        let stream = ReceiverStream::new(events).map(|event| match event {
            Ok(event) => Ok(convert::event(&event)),
            Err(fault) => Err(fault::status(fault)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn configuration_input(
    input: Option<RoomConfigurationInput>,
) -> Result<ConfigurationInput, Status> {
    let Some(input) = input else {
        return Ok(ConfigurationInput::default());
    };
    let open_at = input
        .open_at
        .as_ref()
        .map(|at| convert::from_timestamp("configuration.openAt", at))
        .transpose()
        .map_err(|message| fault::status(RoomError::validation("configuration.openAt", message)))?;
    Ok(ConfigurationInput {
        max_participants: input.max_participants,
        unused_timeout: input.unused_timeout,
        empty_timeout: input.empty_timeout,
        max_duration: input.max_duration,
        open_at,
    })
}
