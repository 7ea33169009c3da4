//! Wall-clock time for room timers.
//!
//! Room deadlines are absolute times, so the actors need the wall clock. The
//! production clock reads the system time; [`TokioClock`] follows tokio's
//! clock instead, so tests can pause and advance time.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that starts at the system time and then advances with
/// tokio's clock, including while it is paused and advanced in tests.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall_start: DateTime<Utc>,
    tokio_start: Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock {
            wall_start: Utc::now(),
            tokio_start: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now() - self.tokio_start;
        self.wall_start + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}
