//! The node supervisor: the root actor of a node, which runs the room
//! registry and starts it again when it fails.
//!
//! Room actors are the registry's children, so they do not outlive it: when
//! the registry fails, the supervisor kills the room actors it left behind,
//! starts a fresh registry, and has it restart each of those rooms from the
//! store. A registry that keeps failing spends the node's restart budget.
//! The supervisor then stops, and [`RegistryHandle::failed`] signals the
//! node to exit rather than serve without a registry.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use roomd_model::RoomId;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::registry::{LiveRooms, RegistryMsg, RestartPolicy, RoomRegistry};

/// How long the supervisor waits for each orphaned room actor to die.
const ROOM_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry currently running, shared with [`crate::RoomService`],
/// which sends it every message.
#[derive(Clone, Default)]
pub(crate) struct RegistryHandle {
    current: Arc<RwLock<Option<ActorRef<RegistryMsg>>>>,
    failed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl RegistryHandle {
    /// Returns the running registry; `None` while the supervisor replaces a
    /// failed one, or after it gave up.
    pub(crate) fn get(&self) -> Option<ActorRef<RegistryMsg>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, registry: Option<ActorRef<RegistryMsg>>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = registry;
    }

    /// Completes once the supervisor gave up on the registry.
    pub(crate) async fn failed(&self) {
        let mut failed = self.failed.subscribe();
        let _ = failed.wait_for(|failed| *failed).await;
    }
}

pub(crate) struct NodeSupervisor {
    /// Template of each new registry.
    pub registry: RoomRegistry,
    /// Registry restarts allowed within the policy's window.
    pub restart: RestartPolicy,
}

pub(crate) struct SupervisorState {
    handle: RegistryHandle,
    restarts: VecDeque<Instant>,
}

impl Actor for NodeSupervisor {
    type Msg = ();
    type State = SupervisorState;
    type Arguments = RegistryHandle;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        handle: RegistryHandle,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let registry = self.spawn_registry(&myself).await?;
        handle.set(Some(registry));
        Ok(SupervisorState {
            handle,
            restarts: VecDeque::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(registry) = state.handle.get() {
            state.handle.set(None);
            if let Err(e) = registry
                .stop_and_wait(Some("shutdown".into()), Some(ROOM_KILL_TIMEOUT * 2))
                .await
            {
                warn!(error = %e, "room registry did not stop cleanly");
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let reason = match event {
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                reason.unwrap_or_else(|| "stopped".into())
            }
            SupervisionEvent::ActorFailed(_, failure) => failure.to_string(),
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => {
                return Ok(());
            }
        };
        state.handle.set(None);
        self.registry_failed(&myself, state, &reason).await
    }
}

impl NodeSupervisor {
    async fn spawn_registry(
        &self,
        myself: &ActorRef<()>,
    ) -> Result<ActorRef<RegistryMsg>, ActorProcessingErr> {
        let (registry, _) =
            Actor::spawn_linked(None, self.registry.clone(), (), myself.get_cell()).await?;
        Ok(registry)
    }

    /// Replaces a failed registry: kills the room actors it left behind,
    /// starts a new registry and has it restart those rooms from the store.
    async fn registry_failed(
        &self,
        myself: &ActorRef<()>,
        state: &mut SupervisorState,
        reason: &str,
    ) -> Result<(), ActorProcessingErr> {
        metrics::counter!("roomd_registry_failures_total").increment(1);
        if !self.within_budget(&mut state.restarts) {
            error!(
                reason,
                budget = self.restart.budget,
                "room registry failed; restart budget spent, stopping the node"
            );
            state.handle.failed.send_replace(true);
            myself.stop(Some("registry restart budget spent".into()));
            return Ok(());
        }

        let rooms = kill_orphans(&self.registry.live).await;
        let registry = self.spawn_registry(myself).await?;
        for &room_id in &rooms {
            let _ = registry.send_message(RegistryMsg::Restart { org: None, room_id });
        }
        state.handle.set(Some(registry));
        warn!(
            reason,
            rooms = rooms.len(),
            "room registry failed; started a new one, which restarts its rooms from the store"
        );
        Ok(())
    }

    fn within_budget(&self, restarts: &mut VecDeque<Instant>) -> bool {
        let now = Instant::now();
        while restarts
            .front()
            .is_some_and(|at| now - *at > self.restart.window)
        {
            restarts.pop_front();
        }
        if restarts.len() >= self.restart.budget {
            return false;
        }
        restarts.push_back(now);
        true
    }
}

/// Kills the room actors of a registry that is gone, as their supervisor's
/// death would, and returns their rooms.
async fn kill_orphans(live: &LiveRooms) -> Vec<RoomId> {
    let orphans: Vec<_> = live
        .iter()
        .map(|entry| (*entry.key(), entry.value().clone()))
        .collect();
    live.clear();
    join_all(orphans.iter().map(|(room_id, actor)| async move {
        if let Err(e) = actor.kill_and_wait(Some(ROOM_KILL_TIMEOUT)).await {
            warn!(%room_id, error = %e, "orphaned room actor did not die in time");
        }
    }))
    .await;
    info!(
        rooms = orphans.len(),
        "killed the room actors of the failed registry"
    );
    orphans.into_iter().map(|(room_id, _)| room_id).collect()
}
