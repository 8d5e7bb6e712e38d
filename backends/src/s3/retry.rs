//! When to try an S3 request again, and how long to wait first
//! (S3_PROTOCOL.md §1.5): up to 10 attempts, exponential backoff with jitter
//! capped at 20 s, no retry budget. One classifier, [`is_retryable`], decides
//! for every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::error::ErrorKind;

/// Attempts per request, the first included (S3_PROTOCOL.md §4).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Backoff before the first retry, before jitter.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(200);
/// Longest backoff between two attempts (the Go SDK's 20 s).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(20);

/// Error codes S3 and compatible stores use for throttling or transient
/// trouble, retried whatever their HTTP status (`RequestTimeout` comes as
/// 400, `RequestCanceled` is Tigris' load shedding).
const RETRYABLE_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestCanceled",
    "InternalError",
    "ServiceUnavailable",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; at least 1.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles with every further attempt.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): between half and
    /// all of `min(max_delay, base_delay × 2^(attempt-1))`, the random part
    /// spreading clients that failed together.
    pub(crate) fn delay(&self, attempt: u32, jitter: &Jitter) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(jitter.next_unit())
    }
}

/// Whether a failed attempt may succeed when sent again: connection trouble
/// and timeouts, HTTP 500, 502, 503, 504, 429 and 408, and the
/// throttling/transient error codes, whatever the status. 501 Not
/// Implemented and 505 are answers about the request itself: sending it
/// again cannot help. Authentication, missing objects or buckets,
/// TLS certificate problems and a failing upload source are final.
pub(crate) fn is_retryable(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::Status { status, code, .. } => {
            matches!(status, 408 | 429 | 500 | 502..=504)
                || code
                    .as_deref()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c))
        }
        ErrorKind::Timeout(_) => true,
        ErrorKind::Transport { tls, .. } => !tls,
        ErrorKind::Credentials { transient, .. } => *transient,
        ErrorKind::Invalid(_)
        | ErrorKind::Body(_)
        | ErrorKind::Signing(_)
        | ErrorKind::Precondition => false,
    }
}

/// A small lock-free pseudo-random source for backoff jitter (splitmix64);
/// tests seed it to make delays reproducible.
#[derive(Debug)]
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    /// Seeded from the clock.
    pub(crate) fn from_clock() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter::seeded(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// A fixed sequence.
    pub(crate) fn seeded(seed: u64) -> Jitter {
        Jitter(AtomicU64::new(seed))
    }

    /// A value in `[0, 1)`.
    pub(crate) fn next_unit(&self) -> f64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<&str>) -> ErrorKind {
        ErrorKind::Status {
            status,
            code: code.map(str::to_owned),
            message: None,
            request_id: None,
        }
    }

    #[test]
    fn one_classifier_decides() {
        for (kind, want) in [
            (status(500, Some("InternalError")), true),
            (status(503, Some("SlowDown")), true),
            (status(503, None), true),
            (status(502, None), true),
            (status(504, None), true),
            // s3s-fs answers ListMultipartUploads with 501: asking again
            // only delays the upload that is waiting on it.
            (status(501, None), false),
            (status(505, None), false),
            (status(429, None), true),
            (status(408, None), true),
            (status(400, Some("RequestTimeout")), true),
            (status(400, Some("RequestCanceled")), true),
            (status(403, Some("SignatureDoesNotMatch")), false),
            (status(404, Some("NoSuchBucket")), false),
            (status(404, Some("NoSuchKey")), false),
            (status(400, Some("InvalidArgument")), false),
            (ErrorKind::Timeout("waiting for the response"), true),
            (
                ErrorKind::Transport {
                    message: "connection reset".into(),
                    tls: false,
                },
                true,
            ),
            (
                ErrorKind::Transport {
                    message: "invalid peer certificate".into(),
                    tls: true,
                },
                false,
            ),
            (ErrorKind::Invalid("no ETag".into()), false),
            (
                ErrorKind::Credentials {
                    message: "STS throttled".into(),
                    transient: true,
                },
                true,
            ),
            (
                ErrorKind::Credentials {
                    message: "AccessDenied".into(),
                    transient: false,
                },
                false,
            ),
            (ErrorKind::Precondition, false),
        ] {
            assert_eq!(is_retryable(&kind), want, "{kind:?}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        let j = Jitter::seeded(7);
        let mut previous_cap = Duration::ZERO;
        for attempt in 1..=12 {
            let cap = DEFAULT_BASE_DELAY
                .saturating_mul(1 << (attempt - 1))
                .min(DEFAULT_MAX_DELAY);
            for _ in 0..50 {
                let d = p.delay(attempt, &j);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {attempt}: {d:?} vs cap {cap:?}"
                );
            }
            assert!(cap >= previous_cap);
            previous_cap = cap;
        }
        assert_eq!(previous_cap, Duration::from_secs(20));
        let a: Vec<f64> = (0..5).map(|_| Jitter::seeded(1).next_unit()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "seeded is reproducible");
        let j = Jitter::seeded(1);
        let b: Vec<f64> = (0..100).map(|_| j.next_unit()).collect();
        assert!(b.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(b.windows(2).any(|w| w[0] != w[1]));
    }
}
