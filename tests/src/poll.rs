//! [`eventually`]: polling for a condition instead of sleeping a guessed
//! time.

use std::time::Duration;

/// Runs `check` every `poll_interval` until it returns `Ok`, and returns
/// that value.
///
/// # Panics
/// When `check` still returns `Err` after `timeout`; the message shows the
/// last error, so make it describe what was seen.
pub async fn eventually<T>(
    timeout: Duration,
    poll_interval: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last_error = match check().await {
            Ok(value) => return value,
            Err(error) => error,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("condition not met within {timeout:?}; last check: {last_error}");
        }
        tokio::time::sleep(poll_interval).await;
    }
}
