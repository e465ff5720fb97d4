//! One retry policy for every remote call (the orchestrator's API, an S3 store): which
//! HTTP answers are worth another attempt, and how long to wait before it — exponential
//! backoff with full jitter (a random wait up to the doubled cap), so a fleet of servers
//! that lost the same endpoint does not come back to it in step.

use std::time::Duration;

/// Answers worth another attempt: a timeout (408), too early (425), too many requests
/// (429) and every server error (5xx). Anything else is final.
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || status >= 500
}

/// The wait before attempt `attempt` (1 for the first retry): a random duration between
/// zero and `base × 2^attempt`, at most `cap`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(cap)
        .as_millis() as u64;
    Duration::from_millis(rand::random::<u64>() % (ceiling + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_answers_are_tried_again() {
        for st in [408, 425, 429, 500, 502, 503, 504] {
            assert!(retryable(st), "{st}");
        }
        for st in [200, 301, 400, 401, 403, 404, 409, 412] {
            assert!(!retryable(st), "{st}");
        }
    }

    #[test]
    fn the_wait_grows_to_its_cap_with_full_jitter() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 1..40 {
            let ceiling = (100u64 << attempt.min(16)).min(2000);
            let w = backoff(attempt, base, cap);
            assert!(w.as_millis() as u64 <= ceiling, "{attempt}: {w:?}");
        }
        // full jitter: the waits spread over the whole range, not around a fixed point
        let waits: Vec<u64> = (0..200)
            .map(|_| backoff(5, base, cap).as_millis() as u64)
            .collect();
        assert!(waits.iter().any(|&w| w < 500) && waits.iter().any(|&w| w > 1500));
    }
}
