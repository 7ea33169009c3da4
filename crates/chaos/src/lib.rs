//! The roomd chaos suite: a randomized workload against a real cluster, a
//! nemesis that injects faults while it runs, a recorded history, and a
//! checker that verifies the design's invariants from that history.
//!
//! - [`run`]: one run from cluster start to checked history.
//! - [`workload`]: the clients and watchers; [`nemesis`]: the fault
//!   schedule and its injection; [`proxy`]: the TCP proxies through which
//!   clients reach nodes, so connections can be cut.
//! - [`history`]: the recorded entries, written as JSON lines.
//! - [`checker`]: the invariants, checked from a history alone.
//! - [`report`]: the printed summary.

pub mod checker;
mod client;
mod final_state;
pub mod history;
pub mod nemesis;
pub mod proxy;
mod recorder;
pub mod report;
pub mod run;
pub mod workload;
