//! A closed-loop load driver: N workers, each sending one request at a time,
//! first for an unmeasured warm-up and then for a measured window bounded by
//! a duration or a request count.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Highest latency the histograms hold; slower requests are recorded as
/// this value.
const MAX_LATENCY_US: u64 = 60_000_000;

/// When a measured window ends.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Duration(Duration),
    Requests(u64),
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub limit: Limit,
}

/// One worker's request. `prepare` runs before every request, outside the
/// timed span, for setup such as picking the next room. Its time is not in
/// the latency but does pass on the measured window's clock.
pub trait Operation: Send + 'static {
    fn prepare(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What the workers measured in the window.
#[derive(Debug)]
pub struct Outcome {
    /// Successful requests that started inside the measured window.
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// From the start of the window to the last measured completion.
    pub elapsed: Duration,
    /// Latency of the successful requests, in microseconds.
    pub latency: Histogram<u64>,
}

impl Outcome {
    pub fn requests_per_second(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Divides the request rate of `measured` by that of `reference`, or
/// returns 0 when the reference completed nothing.
pub fn ratio(measured: &Outcome, reference: &Outcome) -> f64 {
    let reference_rate = reference.requests_per_second();
    if reference_rate == 0.0 {
        return 0.0;
    }
    measured.requests_per_second() / reference_rate
}

struct Timeline {
    measure_from: Instant,
    limit: Limit,
    /// Requests handed out in the measured window, for `Limit::Requests`.
    tickets: AtomicU64,
}

impl Timeline {
    /// Tells whether a request starting at `now` may be sent, and whether
    /// it is measured.
    fn admit(&self, now: Instant) -> Admission {
        if now < self.measure_from {
            return Admission::Warmup;
        }
        match self.limit {
            Limit::Duration(window) if now < self.measure_from + window => Admission::Measured,
            Limit::Requests(count) if self.tickets.fetch_add(1, Ordering::Relaxed) < count => {
                Admission::Measured
            }
            _ => Admission::Done,
        }
    }
}

enum Admission {
    Warmup,
    Measured,
    Done,
}

struct WorkerResult {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    last_completion: Option<Instant>,
    latency: Histogram<u64>,
}

/// Runs one worker per operation until the measured window ends, and
/// merges what they recorded.
pub async fn run<O: Operation>(plan: Plan, operations: Vec<O>) -> Result<Outcome, String> {
    debug_assert_eq!(operations.len(), plan.concurrency);
    let timeline = Arc::new(Timeline {
        measure_from: Instant::now() + plan.warmup,
        limit: plan.limit,
        tickets: AtomicU64::new(0),
    });

    let mut workers = JoinSet::new();
    for operation in operations {
        workers.spawn(drive(operation, timeline.clone()));
    }

    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
    };
    let mut last_completion = None;
    while let Some(joined) = workers.join_next().await {
        let worker = joined.map_err(|e| format!("a load worker panicked: {e}"))??;
        outcome.requests += worker.requests;
        outcome.errors += worker.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = worker.first_error;
        }
        last_completion = last_completion.max(worker.last_completion);
        outcome
            .latency
            .add(&worker.latency)
            .map_err(|e| format!("cannot merge latency histograms: {e}"))?;
    }
    if let Some(last) = last_completion {
        outcome.elapsed = last.saturating_duration_since(timeline.measure_from);
    }
    Ok(outcome)
}

async fn drive<O: Operation>(
    mut operation: O,
    timeline: Arc<Timeline>,
) -> Result<WorkerResult, String> {
    let mut result = WorkerResult {
        requests: 0,
        errors: 0,
        first_error: None,
        last_completion: None,
        latency: new_histogram(),
    };
    loop {
        let measured = match timeline.admit(Instant::now()) {
            Admission::Done => return Ok(result),
            Admission::Warmup => false,
            Admission::Measured => true,
        };
        // A failed setup step (no room to join) ends the worker: every
        // request after it would fail the same way.
        operation.prepare().await?;

        let started = Instant::now();
        let called = operation.call().await;
        if !measured {
            continue;
        }

        let finished = Instant::now();
        result.last_completion = Some(finished);
        match called {
            Ok(()) => {
                result.requests += 1;
                let micros =
                    u64::try_from(finished.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                result
                    .latency
                    .saturating_record(micros.clamp(1, MAX_LATENCY_US));
            }
            Err(message) => {
                result.errors += 1;
                result.first_error.get_or_insert(message);
            }
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("the histogram bounds are valid constants")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleeper {
        delay: Duration,
        fail_every: u64,
        calls: u64,
    }

    impl Operation for Sleeper {
        async fn call(&mut self) -> Result<(), String> {
            self.calls += 1;
            tokio::time::sleep(self.delay).await;
            if self.fail_every > 0 && self.calls % self.fail_every == 0 {
                return Err(format!("call {} failed", self.calls));
            }
            Ok(())
        }
    }

    fn sleepers(count: usize, fail_every: u64) -> Vec<Sleeper> {
        (0..count)
            .map(|_| Sleeper {
                delay: Duration::from_millis(1),
                fail_every,
                calls: 0,
            })
            .collect()
    }

    #[tokio::test]
    async fn request_limit_counts_exactly() {
        let plan = Plan {
            concurrency: 4,
            warmup: Duration::from_millis(20),
            limit: Limit::Requests(100),
        };
        let outcome = run(plan, sleepers(4, 0)).await.unwrap();
        assert_eq!(outcome.requests, 100);
        assert_eq!(outcome.errors, 0);
        assert_eq!(outcome.latency.len(), 100);
        assert!(
            outcome.latency.min() >= 1000,
            "min {} µs",
            outcome.latency.min()
        );
    }

    #[tokio::test]
    async fn duration_limit_stops() {
        let plan = Plan {
            concurrency: 2,
            warmup: Duration::ZERO,
            limit: Limit::Duration(Duration::from_millis(100)),
        };
        let outcome = run(plan, sleepers(2, 0)).await.unwrap();
        assert!(outcome.requests > 10, "only {} requests", outcome.requests);
        assert!(outcome.elapsed >= Duration::from_millis(100));
        assert!(outcome.elapsed < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn errors_are_counted_apart() {
        let plan = Plan {
            concurrency: 1,
            warmup: Duration::ZERO,
            limit: Limit::Requests(10),
        };
        let outcome = run(plan, sleepers(1, 2)).await.unwrap();
        assert_eq!(outcome.requests, 5);
        assert_eq!(outcome.errors, 5);
        assert_eq!(outcome.first_error.as_deref(), Some("call 2 failed"));
        assert_eq!(outcome.latency.len(), 5);
    }
}
