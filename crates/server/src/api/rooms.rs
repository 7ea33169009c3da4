//! The `roomd.v1.Rooms` service.

use std::pin::Pin;

use roomd_actors::{Command, RoomService};
use roomd_model::{ConfigurationInput, NewRoom, RoomError, SortField, UpdateDocument};
use roomd_proto::convert;
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
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{caller, non_empty, room_id};
use crate::caller::Caller;
use crate::fault;

pub struct RoomsApi {
    service: RoomService,
}

impl RoomsApi {
    pub fn new(service: RoomService) -> Self {
        RoomsApi { service }
    }

    /// Applies a change to the room named by `room_id`.
    async fn apply(
        &self,
        caller: Caller,
        room_id_text: &str,
        command: Command,
    ) -> Result<Room, Status> {
        let id = room_id(room_id_text)?;
        let room = self
            .service
            .command(&caller.org, &caller.principal, id, command)
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
        let message = request.into_inner();
        tracing::Span::current().record("org", caller.org.as_str());

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
        tracing::Span::current().record("room_id", room.id.to_string());
        Ok(Response::new(convert::room(&room)))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn get_room(&self, request: Request<GetRoomRequest>) -> Result<Response<Room>, Status> {
        let caller = caller(&request)?;
        let id = room_id(&request.get_ref().room_id)?;
        let room = self
            .service
            .get(&caller.org, &caller.principal, id)
            .await
            .map_err(fault::status)?;
        Ok(Response::new(convert::room(&room)))
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
        let caller = caller(&request)?;
        let message = request.into_inner();
        room_id(&message.room_id)?;
        let document = UpdateDocument::parse(&message.update_json).map_err(fault::status)?;
        let command = Command::Update {
            document,
            expected_version: message.expected_version,
        };
        let room = self.apply(caller, &message.room_id, command).await?;
        Ok(Response::new(room))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn close_room(
        &self,
        request: Request<CloseRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        let caller = caller(&request)?;
        let room = self
            .apply(caller, &request.get_ref().room_id, Command::Close)
            .await?;
        Ok(Response::new(room))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn delete_room(
        &self,
        request: Request<DeleteRoomRequest>,
    ) -> Result<Response<DeleteRoomResponse>, Status> {
        let caller = caller(&request)?;
        let room = self
            .apply(caller, &request.get_ref().room_id, Command::Delete)
            .await?;
        Ok(Response::new(DeleteRoomResponse { room: Some(room) }))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn join_room(&self, request: Request<JoinRoomRequest>) -> Result<Response<Room>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let command = Command::Join {
            account: non_empty(message.account),
        };
        let room = self.apply(caller, &message.room_id, command).await?;
        Ok(Response::new(room))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn leave_room(
        &self,
        request: Request<LeaveRoomRequest>,
    ) -> Result<Response<Room>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let command = Command::Leave {
            account: non_empty(message.account),
        };
        let room = self.apply(caller, &message.room_id, command).await?;
        Ok(Response::new(room))
    }

    #[instrument(skip_all, fields(room_id = %request.get_ref().room_id))]
    async fn list_participants(
        &self,
        request: Request<ListParticipantsRequest>,
    ) -> Result<Response<ListParticipantsResponse>, Status> {
        let caller = caller(&request)?;
        let id = room_id(&request.get_ref().room_id)?;
        let room = self
            .service
            .get(&caller.org, &caller.principal, id)
            .await
            .map_err(fault::status)?;
        Ok(Response::new(ListParticipantsResponse {
            participants: room.participants.iter().map(convert::participant).collect(),
        }))
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
            .watch(&caller.org, &caller.principal, id, message.from_seq)
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
