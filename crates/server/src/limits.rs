//! The request rate per caller, enforced before a request reaches a handler.
//! [`crate::fault::codec_faults`] reports requests over the size limit, and
//! the model checks the shape of what the handlers receive against the same
//! [`roomd_model::Limits`].

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use roomd_model::{Limits, RoomError};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::caller::Caller;
use crate::fault;

/// Key of the shared bucket for requests whose caller metadata is invalid;
/// their handlers reject them, but they still count against a rate.
const INVALID_CALLER_KEY: &str = "invalid-caller";

/// Interval at which the rate limiter drops the state of callers whose
/// bucket is full again.
pub const RATE_STATE_CLEANUP: Duration = Duration::from_secs(60);

/// Request rate per caller, as a keyed GCRA rate limiter: each caller gets
/// `request_burst` requests at once, refilled at `requests_per_second`.
pub struct RequestRate {
    limiter: DefaultKeyedRateLimiter<String>,
    per_second: u32,
}

impl RequestRate {
    pub fn new(limits: &Limits) -> Arc<Self> {
        let per_second = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.request_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Arc::new(RequestRate {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            per_second: per_second.get(),
        })
    }

    /// Counts one request of the caller under `key`, or fails with
    /// `limit.rate` and the time after which a retry may pass.
    pub fn check(&self, key: &str) -> Result<(), RoomError> {
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| RoomError::RateLimited {
                per_second: self.per_second,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Drops the state of callers that could make a full burst again, so
    /// that the limiter's memory follows the callers active lately.
    pub fn forget_idle_callers(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Rejects requests over their caller's rate before they are decoded.
#[derive(Clone)]
pub struct RateInterceptor {
    rate: Arc<RequestRate>,
}

impl RateInterceptor {
    pub fn new(rate: Arc<RequestRate>) -> Self {
        RateInterceptor { rate }
    }
}

impl Interceptor for RateInterceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        // The authenticated caller when authentication ran first; the
        // headers otherwise.
        let key = match request.extensions().get::<Caller>() {
            Some(caller) => caller.limit_key(),
            None => Caller::from_metadata(request.metadata())
                .map(|caller| caller.limit_key())
                .unwrap_or_else(|_| INVALID_CALLER_KEY.to_owned()),
        };
        self.rate.check(&key).map_err(fault::status)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_at_and_over_the_limit() {
        let rate = RequestRate::new(&Limits {
            requests_per_second: 1,
            request_burst: 3,
            ..Limits::default()
        });
        for _ in 0..3 {
            assert_eq!(rate.check("o/account/a"), Ok(()));
        }
        let err = rate.check("o/account/a").unwrap_err();
        assert_eq!(err.reason(), "limit.rate");
        let RoomError::RateLimited { retry_after, .. } = err else {
            panic!("expected a rate fault, got {err:?}");
        };
        assert!(retry_after > Duration::ZERO);
        assert!(retry_after <= Duration::from_secs(1));

        assert_eq!(rate.check("o/account/b"), Ok(()));
    }
}
