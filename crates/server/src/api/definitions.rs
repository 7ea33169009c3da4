//! The `roomd.v1.Definitions` service.

use roomd_actors::RoomService;
use roomd_model::{RoomDefinition, RoomError};
use roomd_proto::convert;
use roomd_proto::v1::definitions_server::Definitions;
use roomd_proto::v1::{
    GetRoomDefinitionRequest, PutRoomDefinitionRequest, RoomDefinition as WireDefinition,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::caller;
use crate::fault;

pub struct DefinitionsApi {
    service: RoomService,
}

impl DefinitionsApi {
    pub fn new(service: RoomService) -> Self {
        DefinitionsApi { service }
    }
}

#[tonic::async_trait]
impl Definitions for DefinitionsApi {
    #[instrument(skip_all)]
    async fn put_room_definition(
        &self,
        request: Request<PutRoomDefinitionRequest>,
    ) -> Result<Response<WireDefinition>, Status> {
        let caller = caller(&request)?;
        let Some(wire) = request.into_inner().definition else {
            return Err(fault::status(RoomError::validation(
                "definition",
                "is required",
            )));
        };
        if !wire.org.is_empty() && wire.org != caller.org {
            return Err(fault::status(RoomError::validation(
                "definition.org",
                format!(
                    "names org {:?}, but the request is for org {:?}",
                    wire.org, caller.org
                ),
            )));
        }

        let properties =
            convert::from_property_definitions(&wire.properties).map_err(|message| {
                fault::status(RoomError::validation("definition.properties", message))
            })?;
        let definition =
            RoomDefinition::new(&caller.org, &wire.label, &wire.default_acl, properties)
                .and_then(|definition| definition.with_max_open_rooms(wire.max_open_rooms))
                .map_err(fault::status)?;
        let stored = self
            .service
            .put_definition(&caller.principal, definition)
            .await
            .map_err(fault::status)?;
        Ok(Response::new(convert::definition(&stored)))
    }

    #[instrument(skip_all)]
    async fn get_room_definition(
        &self,
        request: Request<GetRoomDefinitionRequest>,
    ) -> Result<Response<WireDefinition>, Status> {
        let caller = caller(&request)?;
        let definition = self
            .service
            .get_definition(&caller.org)
            .await
            .map_err(fault::status)?;
        Ok(Response::new(convert::definition(&definition)))
    }
}
