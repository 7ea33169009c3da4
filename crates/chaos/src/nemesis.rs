//! The nemesis: a schedule of faults drawn from the run's seed, and the
//! code that injects them into the cluster while the workload runs.
//!
//! The schedule goes through every fault kind in a shuffled order, then
//! shuffles again, so a short run still injects each kind. Each fault ends
//! with the cluster whole again (nodes restarted or resumed, Redis back)
//! before the next one starts.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use roomd_proto::v1::chaos_client::ChaosClient;
use roomd_proto::v1::{KillRegistryRequest, KillRoomActorsRequest};
use roomd_tests::Cluster;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::history::{Entry, FaultKind, FaultRecord};
use crate::proxy::Proxy;
use crate::recorder::Recorder;

/// One planned fault.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    /// Time from the start of the run.
    pub at: Duration,
    pub kind: FaultKind,
    pub node: usize,
    /// Actors to kill, or how long a node or Redis stays down or paused
    /// beyond what the kind needs, in milliseconds.
    pub amount: u64,
}

#[derive(Debug, Clone)]
pub struct NemesisConfig {
    pub seed: u64,
    pub nodes: usize,
    pub node_ttl: Duration,
    /// Mean pause between the end of one fault and the start of the next.
    pub mean_gap: Duration,
}

/// Plans the faults of a run that lasts `duration`, leaving its first and
/// last few seconds calm.
pub fn plan(config: &NemesisConfig, duration: Duration) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(0x5EED));
    let calm = Duration::from_secs(3);
    let mut faults = Vec::new();
    let mut at = calm;
    let mut kinds = Vec::new();
    loop {
        if kinds.is_empty() {
            kinds = FaultKind::ALL.to_vec();
            kinds.shuffle(&mut rng);
        }
        let gap_ms = config.mean_gap.as_millis() as u64;
        at += Duration::from_millis(rng.random_range(gap_ms / 2..=gap_ms * 3 / 2));
        let kind = kinds.pop().unwrap_or(FaultKind::KillRoomActors);
        let amount = match kind {
            FaultKind::KillRoomActors => rng.random_range(1..=20),
            FaultKind::KillNode | FaultKind::RestartRedis => rng.random_range(200..=2_000),
            FaultKind::PauseNode => rng.random_range(500..=2_500),
            FaultKind::KillRegistry | FaultKind::CutConnections => 0,
        };
        let fault = PlannedFault {
            at,
            kind,
            node: rng.random_range(0..config.nodes),
            amount,
        };
        at += expected_length(&fault, config);
        if at + calm > duration {
            return faults;
        }
        faults.push(fault);
    }
}

/// Roughly how long a fault keeps the cluster from being whole.
fn expected_length(fault: &PlannedFault, config: &NemesisConfig) -> Duration {
    let amount = Duration::from_millis(fault.amount);
    match fault.kind {
        FaultKind::KillNode => amount + Duration::from_secs(2),
        FaultKind::PauseNode => config.node_ttl + amount,
        FaultKind::RestartRedis => amount + Duration::from_secs(1),
        FaultKind::KillRoomActors | FaultKind::KillRegistry | FaultKind::CutConnections => {
            Duration::ZERO
        }
    }
}

/// Injects `plan` into the cluster, starting from `started`.
pub async fn run(
    plan: Vec<PlannedFault>,
    config: NemesisConfig,
    cluster: &mut Cluster,
    proxies: &[Arc<Proxy>],
    recorder: &Recorder,
    started: Instant,
) {
    for fault in plan {
        tokio::time::sleep_until(started + fault.at).await;
        let start = Utc::now();
        // Redis is shared by every node, so a Redis restart names none.
        let node = (!matches!(fault.kind, FaultKind::RestartRedis)).then_some(fault.node);
        info!(kind = fault.kind.name(), node, "injecting fault");

        let detail = inject(&fault, &config, cluster, proxies).await;
        info!(kind = fault.kind.name(), node, detail, "fault over");

        recorder.record(Entry::Fault(FaultRecord {
            id: recorder.next_id(),
            kind: fault.kind,
            node,
            start,
            end: Utc::now(),
            detail,
        }));
    }
}

async fn inject(
    fault: &PlannedFault,
    config: &NemesisConfig,
    cluster: &mut Cluster,
    proxies: &[Arc<Proxy>],
) -> String {
    let amount = Duration::from_millis(fault.amount);
    let node = fault.node;
    match fault.kind {
        FaultKind::KillRoomActors => {
            let count = u32::try_from(fault.amount).unwrap_or(u32::MAX);
            let mut chaos = chaos_client(cluster, node);
            match chaos
                .kill_room_actors(KillRoomActorsRequest { count })
                .await
            {
                Ok(killed) => format!("killed {} room actors", killed.into_inner().room_ids.len()),
                Err(status) => failed("KillRoomActors", &status),
            }
        }
        FaultKind::KillRegistry => {
            let mut chaos = chaos_client(cluster, node);
            match chaos.kill_registry(KillRegistryRequest {}).await {
                Ok(killed) => format!("killed the registry of {} rooms", killed.into_inner().rooms),
                Err(status) => failed("KillRegistry", &status),
            }
        }
        FaultKind::KillNode => {
            let target = cluster.node_mut(node);
            target.sigkill().await;
            tokio::time::sleep(amount).await;
            target.restart().await;
            proxies[node].set_upstream(target.address());
            format!("SIGKILL, down {} ms, restarted", fault.amount)
        }
        FaultKind::PauseNode => {
            let target = cluster.node_mut(node);
            target.sigstop();
            tokio::time::sleep(config.node_ttl + amount).await;
            target.sigcont();
            format!(
                "SIGSTOP for {} ms, then SIGCONT",
                (config.node_ttl + amount).as_millis()
            )
        }
        FaultKind::RestartRedis => {
            let redis = cluster.redis_mut();
            redis.kill();
            tokio::time::sleep(amount).await;
            redis.start().await;
            format!(
                "SIGKILL, down {} ms, restarted from its append-only file",
                fault.amount
            )
        }
        FaultKind::CutConnections => {
            if proxies[node].cut_mid_request(Duration::from_secs(5)).await {
                "cut a client's connection after forwarding its request".into()
            } else {
                "no request came through within 5 s; nothing cut".into()
            }
        }
    }
}

fn chaos_client(cluster: &Cluster, node: usize) -> ChaosClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(cluster.node(node).url())
        .expect("node URLs are valid")
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    ChaosClient::new(channel)
}

fn failed(call: &str, status: &tonic::Status) -> String {
    warn!(call, code = ?status.code(), message = status.message(), "fault injection call failed");
    format!("{call} failed: {:?} {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> NemesisConfig {
        NemesisConfig {
            seed,
            nodes: 3,
            node_ttl: Duration::from_secs(2),
            mean_gap: Duration::from_secs(5),
        }
    }

    #[test]
    fn plan_is_same_for_same_seed() {
        let duration = Duration::from_secs(600);
        assert_eq!(plan(&config(7), duration), plan(&config(7), duration));
        assert_ne!(plan(&config(7), duration), plan(&config(8), duration));
    }

    #[test]
    fn short_profile_injects_every_kind_twice() {
        for seed in 0..50 {
            let faults = plan(&config(seed), Duration::from_secs(150));
            for kind in FaultKind::ALL {
                let count = faults.iter().filter(|fault| fault.kind == kind).count();
                assert!(count >= 2, "seed {seed} plans {count} {kind:?} faults");
            }
        }
    }

    #[test]
    fn plan_faults_fit_run_without_overlap() {
        let config = config(3);
        let duration = Duration::from_secs(300);
        let faults = plan(&config, duration);
        for pair in faults.windows(2) {
            assert!(pair[0].at + expected_length(&pair[0], &config) <= pair[1].at);
        }
        let last = faults.last().expect("a 300 s run has faults");
        assert!(last.at + expected_length(last, &config) < duration);
        assert!(faults.iter().all(|fault| fault.node < 3));
    }
}
