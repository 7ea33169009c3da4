//! One chaos run: start a cluster, run the workload and the nemesis side
//! by side, let the cluster settle, read the final state, and check the
//! history.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use roomd_proto::v1::definitions_client::DefinitionsClient;
use roomd_proto::v1::{PutRoomDefinitionRequest, RoomDefinition};
use roomd_tests::Cluster;
use tokio::time::Instant;
use tracing::info;

use crate::checker::{self, Violation};
use crate::client::{request, rooms_client};
use crate::history::{self, Entry, FaultKind, RunInfo};
use crate::nemesis::{self, NemesisConfig};
use crate::proxy::Proxy;
use crate::recorder::Recorder;
use crate::workload::{self, KnownRooms, Shared, WorkloadConfig};

pub const LIMITED_ORG: &str = "chaos-limited";
pub const FREE_ORG: &str = "chaos";

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    pub nodes: usize,
    pub duration: Duration,
    pub clients: u32,
    pub watchers: u32,
    pub node_ttl: Duration,
    pub mean_fault_gap: Duration,
    pub max_open_rooms: u32,
    /// Minimum number of faults of each kind the schedule must contain.
    pub require_each_fault: usize,
    pub history: PathBuf,
}

impl RunConfig {
    /// Returns how late a timer may fire while the cluster recovers a node.
    /// The node's TTL runs out, and a survivor's scan (at most a second
    /// later) claims the room and fires the overdue timer. Twice the TTL
    /// plus three seconds also covers a node paused just past its TTL.
    pub fn failover_bound(&self) -> Duration {
        self.node_ttl * 2 + Duration::from_secs(3)
    }
}

pub struct RunOutcome {
    pub entries: Vec<Entry>,
    pub violations: Vec<Violation>,
}

pub async fn run(config: &RunConfig) -> Result<RunOutcome, String> {
    let nemesis_config = NemesisConfig {
        seed: config.seed,
        nodes: config.nodes,
        node_ttl: config.node_ttl,
        mean_gap: config.mean_fault_gap,
    };
    let plan = nemesis::plan(&nemesis_config, config.duration);
    for kind in FaultKind::ALL {
        let planned = plan.iter().filter(|fault| fault.kind == kind).count();
        if planned < config.require_each_fault {
            return Err(format!(
                "the schedule holds {planned} {} faults, fewer than the {} required; run longer or with a shorter --fault-gap",
                kind.name(),
                config.require_each_fault
            ));
        }
    }

    info!(seed = config.seed, nodes = config.nodes, duration = ?config.duration, "starting the cluster");
    let mut cluster = Cluster::builder()
        .nodes(config.nodes)
        .node_ttl(config.node_ttl.as_secs())
        .args(&["--enable-chaos", "--closed-linger", "2"])
        .start()
        .await;
    define_orgs(&cluster, config.max_open_rooms).await?;

    let mut proxies = Vec::new();
    for node in cluster.nodes() {
        let proxy = Proxy::start(node.address())
            .await
            .map_err(|e| format!("cannot start a proxy: {e}"))?;
        proxies.push(Arc::new(proxy));
    }
    let recorder = Arc::new(Recorder::default());
    let shared = Arc::new(Shared {
        config: WorkloadConfig {
            seed: config.seed,
            clients: config.clients,
            watchers: config.watchers,
            limited_org: LIMITED_ORG.into(),
            free_org: FREE_ORG.into(),
        },
        nodes: proxies.iter().map(|proxy| proxy.address()).collect(),
        recorder: recorder.clone(),
        rooms: KnownRooms::default(),
    });
    info!(faults = plan.len(), "running the workload and the nemesis");

    let started_at = Utc::now();
    let started = Instant::now();
    let until = started + config.duration;
    tokio::join!(
        workload::run(shared.clone(), until),
        nemesis::run(
            plan,
            nemesis_config,
            &mut cluster,
            &proxies,
            &recorder,
            started
        ),
    );
    let quiesced = Utc::now();

    info!("workload over; letting the cluster settle");
    cluster.wait_ready().await;
    tokio::time::sleep(config.failover_bound()).await;

    let finished = Utc::now();
    let direct: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|node| rooms_client(node.address()))
        .collect();
    let mut entries = recorder.take();
    let finals =
        crate::final_state::read(&direct, &[LIMITED_ORG.into(), FREE_ORG.into()], &entries).await?;
    info!(rooms = finals.len(), "read the final state");

    let run = RunInfo {
        seed: config.seed,
        nodes: config.nodes,
        node_ttl_secs: config.node_ttl.as_secs(),
        failover_bound_ms: config.failover_bound().as_millis() as u64,
        limited_org: LIMITED_ORG.into(),
        max_open_rooms: config.max_open_rooms,
        started: started_at,
        quiesced,
        finished,
    };
    entries.insert(0, Entry::Run(run));
    entries.extend(finals.into_iter().map(Entry::Final));
    history::write(&config.history, &entries)
        .map_err(|e| format!("cannot write {}: {e}", config.history.display()))?;

    let violations = checker::check(&entries)?;
    Ok(RunOutcome {
        entries,
        violations,
    })
}

async fn define_orgs(cluster: &Cluster, max_open_rooms: u32) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(cluster.node(0).url())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot reach node 0: {e}"))?;
    let mut definitions = DefinitionsClient::new(channel);
    for (org, limit) in [(LIMITED_ORG, Some(max_open_rooms)), (FREE_ORG, None)] {
        let definition = RoomDefinition {
            org: org.into(),
            label: "Chaos visit".into(),
            max_open_rooms: limit,
            ..RoomDefinition::default()
        };
        definitions
            .put_room_definition(request(
                org,
                PutRoomDefinitionRequest {
                    definition: Some(definition),
                },
            ))
            .await
            .map_err(|status| format!("cannot define org {org}: {status:?}"))?;
    }
    Ok(())
}
