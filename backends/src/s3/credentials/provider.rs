//! [`CredentialProvider`]: the keys every request is signed with. Static
//! keys are handed out as they are; temporary keys (STS, container,
//! instance metadata, `credential_process`) are cached and fetched again
//! before they expire, one fetch at a time, and on demand when S3 rejects
//! them as expired.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{CredentialSource, Credentials, Fetcher};
use crate::s3::sign::Signer;

/// How long before their expiry temporary keys are replaced, at most; keys
/// that live shorter than twice this are replaced at half their lifetime.
pub(crate) const REFRESH_EARLY: Duration = Duration::from_secs(5 * 60);

/// Why no keys could be had. The message names the source and says what
/// to fix; it never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchError {
    pub(crate) message: String,
    /// Asking again later may help (a timeout, a 5xx, throttling).
    pub(crate) transient: bool,
}

impl FetchError {
    pub(crate) fn permanent(message: impl Into<String>) -> FetchError {
        FetchError {
            message: message.into(),
            transient: false,
        }
    }

    pub(crate) fn transient(message: impl Into<String>) -> FetchError {
        FetchError {
            message: message.into(),
            transient: true,
        }
    }
}

/// Keys in use, with their signer.
#[derive(Debug)]
pub(crate) struct Current {
    pub(crate) credentials: Credentials,
    pub(crate) signer: Signer,
    /// Which fetch produced them, so a rejection only discards these.
    generation: u64,
    /// When to fetch new ones; `None`: never.
    refresh_at: Option<SystemTime>,
}

impl Current {
    fn new(credentials: Credentials, generation: u64, now: SystemTime) -> Current {
        let refresh_at = credentials.expires.map(|expires| {
            let lifetime = expires.duration_since(now).unwrap_or_default();
            expires - REFRESH_EARLY.min(lifetime / 2)
        });
        Current {
            signer: Signer::new(&credentials),
            credentials,
            generation,
            refresh_at,
        }
    }

    fn is_fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.is_none_or(|t| now < t)
    }

    fn is_unexpired(&self, now: SystemTime) -> bool {
        self.credentials.expires.is_none_or(|t| now < t)
    }
}

/// Hands out the keys to sign with.
#[derive(Debug)]
pub(crate) struct CredentialProvider {
    source: CredentialSource,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Static(Arc<Current>),
    Dynamic(Box<Dynamic>),
}

#[derive(Debug)]
struct Dynamic {
    fetcher: Fetcher,
    /// The keys last fetched; held only to copy or replace the `Arc`.
    cached: Mutex<Option<Arc<Current>>>,
    /// Held while fetching, so concurrent requests wait for one fetch.
    fetching: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

impl CredentialProvider {
    /// Keys that never change.
    pub(crate) fn fixed(credentials: Credentials) -> CredentialProvider {
        CredentialProvider {
            source: credentials.source.clone(),
            kind: Kind::Static(Arc::new(Current::new(credentials, 0, SystemTime::now()))),
        }
    }

    /// Keys fetched (and fetched again) by `fetcher`.
    pub(crate) fn fetched(source: CredentialSource, fetcher: Fetcher) -> CredentialProvider {
        CredentialProvider {
            source,
            kind: Kind::Dynamic(Box::new(Dynamic {
                fetcher,
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
                generations: AtomicU64::new(0),
            })),
        }
    }

    /// Where the keys come from.
    pub(crate) fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// The keys of a static provider.
    #[cfg(test)]
    pub(crate) fn fixed_credentials(&self) -> Option<&Credentials> {
        match &self.kind {
            Kind::Static(c) => Some(&c.credentials),
            Kind::Dynamic(_) => None,
        }
    }

    /// Whether the keys can change (and so be fetched again).
    pub(crate) fn is_dynamic(&self) -> bool {
        matches!(self.kind, Kind::Dynamic(_))
    }

    /// The access key id in use, if keys were obtained (for messages).
    pub(crate) fn access_key_id(&self) -> Option<String> {
        match &self.kind {
            Kind::Static(c) => Some(c.credentials.access_key_id.clone()),
            Kind::Dynamic(d) => d.snapshot().map(|c| c.credentials.access_key_id.clone()),
        }
    }

    /// Keys valid for a while yet, fetching them if needed.
    pub(crate) async fn get(&self) -> Result<Arc<Current>, FetchError> {
        match &self.kind {
            Kind::Static(c) => Ok(Arc::clone(c)),
            Kind::Dynamic(d) => d.get(&self.source).await,
        }
    }

    /// S3 rejected `used` as expired or invalid: the next [`get`](Self::get)
    /// fetches new keys, unless another request already did.
    pub(crate) fn reject(&self, used: &Current) {
        if let Kind::Dynamic(d) = &self.kind {
            let mut cached = d.lock();
            if cached
                .as_ref()
                .is_some_and(|c| c.generation == used.generation)
            {
                *cached = None;
            }
        }
    }
}

impl Dynamic {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Current>>> {
        // Nothing panics while holding it; a poisoned value is still whole.
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot(&self) -> Option<Arc<Current>> {
        self.lock().clone()
    }

    fn fresh(&self, now: SystemTime) -> Option<Arc<Current>> {
        self.snapshot().filter(|c| c.is_fresh(now))
    }

    async fn get(&self, source: &CredentialSource) -> Result<Arc<Current>, FetchError> {
        if let Some(c) = self.fresh(SystemTime::now()) {
            return Ok(c);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(c) = self.fresh(SystemTime::now()) {
            return Ok(c);
        }
        match self.fetcher.fetch(source).await {
            Ok(credentials) => {
                let now = SystemTime::now();
                if credentials.expires.is_some_and(|t| t <= now) {
                    return Err(FetchError::transient(format!(
                        "{source}: the credentials handed out have already expired; check the \
                         clocks of this machine and of the credential source"
                    )));
                }
                let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                let current = Arc::new(Current::new(credentials, generation, now));
                tracing::debug!(
                    source = %source,
                    access_key_id = %current.credentials.access_key_id,
                    expires = ?current.credentials.expires,
                    "fetched S3 credentials"
                );
                *self.lock() = Some(Arc::clone(&current));
                Ok(current)
            }
            Err(e) => {
                // Keys due for renewal but not yet expired still work.
                if let Some(old) = self
                    .snapshot()
                    .filter(|c| c.is_unexpired(SystemTime::now()))
                {
                    tracing::warn!(error = %e.message, "could not renew S3 credentials; using the current ones until they expire");
                    return Ok(old);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::s3::credentials::SecretString;

    fn creds(id: &str, expires: Option<SystemTime>) -> Credentials {
        Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: SecretString::new("s3cr3t"),
            session_token: Some(SecretString::new("t0ken")),
            source: CredentialSource::AwsEnv,
            expires,
        }
    }

    #[test]
    fn refresh_comes_early_but_not_before_half_the_lifetime() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Current::new(creds("A", Some(now + Duration::from_secs(3600))), 1, now);
        assert_eq!(hour.refresh_at, Some(now + Duration::from_secs(3300)));
        let short = Current::new(creds("A", Some(now + Duration::from_secs(4))), 1, now);
        assert_eq!(short.refresh_at, Some(now + Duration::from_secs(2)));
        assert!(short.is_fresh(now + Duration::from_secs(1)));
        assert!(!short.is_fresh(now + Duration::from_secs(2)));
        assert!(short.is_unexpired(now + Duration::from_secs(3)));
        let forever = Current::new(creds("A", None), 1, now);
        assert!(forever.is_fresh(now + Duration::from_secs(1 << 40)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_fetch_at_a_time_and_rejection_fetches_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let fetcher = Fetcher::test(move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(creds(
                &format!("KEY{n}"),
                Some(SystemTime::now() + Duration::from_secs(3600)),
            ))
        });
        let p = Arc::new(CredentialProvider::fetched(
            CredentialSource::AwsEnv,
            fetcher,
        ));
        assert!(p.is_dynamic());
        assert_eq!(p.access_key_id(), None);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let p = Arc::clone(&p);
            tasks.spawn(async move { p.get().await.map(|c| c.credentials.access_key_id.clone()) });
        }
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.unwrap().unwrap(), "KEY1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let used = p.get().await.unwrap();
        p.reject(&used);
        let next = p.get().await.unwrap();
        assert_eq!(next.credentials.access_key_id, "KEY2");
        // A late rejection of the old keys does not discard the new ones.
        p.reject(&used);
        assert_eq!(p.get().await.unwrap().credentials.access_key_id, "KEY2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(p.access_key_id().as_deref(), Some("KEY2"));
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_unexpired_keys_and_fails_once_they_expire() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let fetcher = Fetcher::test(move || {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Ok(creds(
                    "FIRST",
                    Some(SystemTime::now() + Duration::from_millis(600)),
                ))
            } else {
                Err(FetchError::transient("test source: unreachable"))
            }
        });
        let p = CredentialProvider::fetched(CredentialSource::AwsEnv, fetcher);
        assert_eq!(p.get().await.unwrap().credentials.access_key_id, "FIRST");
        tokio::time::sleep(Duration::from_millis(350)).await;
        // Due for renewal, renewal fails, still valid: kept.
        assert_eq!(p.get().await.unwrap().credentials.access_key_id, "FIRST");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let err = p.get().await.unwrap_err();
        assert!(err.transient);
        assert!(err.message.contains("unreachable"), "{err:?}");
        assert!(calls.load(Ordering::SeqCst) >= 3);
    }
}
