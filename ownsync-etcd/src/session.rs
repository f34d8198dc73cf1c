//! A process's presence in the fleet: one etcd lease, kept alive in the background.
//!
//! Holds are not attached to the lease (etcd would delete them silently when it
//! expires, which is the reclaim this crate exists to avoid). The lease carries one
//! key, the session key, that says the process is alive; a hold whose session key is
//! gone was abandoned, and whoever sees that first settles it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use ownsync::{AbandonPolicy, AbandonReason};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{FleetError, HolderInfo};
use crate::keys::{Keys, delete_hold, session_key};

/// One process's membership of the fleet: an etcd lease kept alive every third of its
/// time to live, and the limiters it reaches.
///
/// Cheap to clone (every clone is the same session). Dropping the last clone, and the
/// last limiter and token made from it, revokes the lease in the background; use
/// [`close`](Self::close) to wait for that.
///
/// ```no_run
/// use std::time::Duration;
/// use ownsync_etcd::Session;
/// # async fn demo() -> Result<(), ownsync_etcd::FleetError> {
/// let session = Session::connect(&["http://127.0.0.1:2379"], Duration::from_secs(5)).await?;
/// let migration = session.mutex("migration");
/// let token = migration.acquire().await?;
/// // ... run the migration, writing with token.fence() checked ...
/// token.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

pub(crate) struct SessionInner {
    pub(crate) client: Client,
    pub(crate) lease: i64,
    pub(crate) ttl: Duration,
    pub(crate) process: String,
    lost: watch::Receiver<bool>,
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    sequence: AtomicU64,
    keep_alive: JoinHandle<()>,
}

/// Work that a drop or an owner's exit hands to the session's background task, since
/// neither can wait for etcd.
pub(crate) enum Job {
    /// A token dropped without `release().await`: delete its key if it is still that hold.
    Release { key: String, create_revision: i64 },
    /// A tracked task ended holding a token.
    Abandoned {
        keys: Keys,
        key: String,
        create_revision: i64,
        policy: AbandonPolicy,
        holder: HolderInfo,
        reason: AbandonReason,
    },
    /// The session was dropped: revoke the lease after the jobs before this one.
    Close,
}

impl Session {
    /// Connects to etcd at `endpoints` (`http://host:port`), grants this process's
    /// lease with a time to live of `ttl` (whole seconds, at least 1 s; etcd may grant
    /// more: see [`ttl`](Self::ttl)), and keeps it alive every `ttl / 3` from a
    /// background task of the current tokio runtime.
    ///
    /// The time to live is the trade-off of the fleet types: a holder that dies is
    /// found about `ttl` after its last keep-alive, and a holder (or etcd) that stalls
    /// longer than `ttl` loses its lease although it lives.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), ownsync_etcd::FleetError> {
    /// let session = ownsync_etcd::Session::connect(&["http://127.0.0.1:2379"], std::time::Duration::from_secs(5)).await?;
    /// assert!(session.ttl() >= std::time::Duration::from_secs(5));
    /// # Ok(()) }
    /// ```
    pub async fn connect(endpoints: &[&str], ttl: Duration) -> Result<Session, FleetError> {
        if ttl < Duration::from_secs(1) {
            return Err(etcd_client::Error::InvalidArgs(format!("ttl {ttl:?} is below etcd's 1 s")).into());
        }
        let mut client = Client::connect(endpoints, None).await?;
        let granted = client.lease_grant(ttl.as_secs_f64().ceil() as i64, None).await?;
        let (lease, ttl) = (granted.id(), Duration::from_secs(granted.ttl().max(1) as u64));
        let process = format!("pid {} on {}", std::process::id(), host_name());
        let info = HolderInfo { lease, process: process.clone(), task: None, site: None };
        client.put(session_key(lease), info.encode(None), Some(PutOptions::new().with_lease(lease))).await?;
        let (lost_tx, lost) = watch::channel(false);
        let keep_alive = tokio::spawn(keep_alive(client.clone(), lease, ttl, lost_tx));
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_jobs(client.clone(), lease, queue));
        let inner =
            SessionInner { client, lease, ttl, process, lost, jobs, sequence: AtomicU64::new(0), keep_alive };
        Ok(Session { inner: Arc::new(inner) })
    }

    /// Resolves when this session's lease is lost (etcd said it expired, or it could
    /// not be renewed for a whole time to live): from then on the holds of this
    /// process may belong to others, so a holder should stop writing.
    ///
    /// ```no_run
    /// # async fn demo(session: ownsync_etcd::Session) {
    /// tokio::select! {
    ///     _ = session.lost() => eprintln!("lease lost: stopping"),
    ///     _ = async { /* the work done under a token */ } => {}
    /// }
    /// # }
    /// ```
    pub async fn lost(&self) {
        let mut lost = self.inner.lost.clone();
        // An error means the keep-alive task ended, which it does only once lost.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Whether the lease is known to be lost (see [`lost`](Self::lost)).
    pub fn is_lost(&self) -> bool {
        *self.inner.lost.borrow()
    }

    /// The session's etcd lease.
    pub fn lease(&self) -> i64 {
        self.inner.lease
    }

    /// The time to live etcd granted.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The etcd client the session uses, for fenced writes (see
    /// [`FleetToken::fence_compares`](crate::FleetToken::fence_compares)).
    pub fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// Revokes the lease now, after the releases still queued: every hold this process
    /// still has is then abandoned (broken or reclaimed by the next process that looks).
    pub async fn close(self) -> Result<(), FleetError> {
        self.inner.keep_alive.abort();
        let mut client = self.inner.client.clone();
        client.lease_revoke(self.inner.lease).await?;
        Ok(())
    }

    pub(crate) fn next_sequence(&self) -> u64 {
        self.inner.sequence.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lease", &format_args!("{:x}", self.inner.lease))
            .field("ttl", &self.inner.ttl)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.keep_alive.abort();
        let _ = self.jobs.send(Job::Close);
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// Renews the lease every `ttl / 3`. Lost when etcd answers that it expired, or when no
/// renewal sent in the last `ttl` was answered.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, lost: watch::Sender<bool>) {
    let period = ttl / 3;
    let mut renewed_at = Instant::now();
    let mut stream = None;
    loop {
        tokio::time::sleep(period).await;
        let sent_at = Instant::now();
        if stream.is_none() {
            stream =
                tokio::time::timeout(period, client.lease_keep_alive(lease)).await.ok().and_then(Result::ok);
        }
        let answer = match stream.as_mut() {
            Some((keeper, responses)) => {
                tokio::time::timeout(period, async {
                    keeper.keep_alive().await?;
                    responses.message().await
                })
                .await
            }
            None => Ok(Ok(None)),
        };
        match answer {
            Ok(Ok(Some(response))) if response.ttl() > 0 => renewed_at = sent_at,
            Ok(Ok(Some(_))) => break, // etcd says the lease is gone
            _ => {
                stream = None;
                if renewed_at.elapsed() >= ttl {
                    break;
                }
            }
        }
    }
    let _ = lost.send(true);
}

/// Runs the jobs drops and exits hand over, in order.
async fn run_jobs(mut client: Client, lease: i64, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = queue.recv().await {
        match job {
            Job::Release { key, create_revision } => {
                let _ = delete_hold(&mut client, &key, create_revision).await;
            }
            Job::Abandoned { keys, key, create_revision, policy, holder, reason } => {
                let when = [Compare::create_revision(key.as_str(), CompareOp::Equal, create_revision)];
                let mut then = vec![TxnOp::delete(key.as_str(), None)];
                if policy == AbandonPolicy::Break {
                    then.push(keys.break_op(&holder, reason));
                }
                let _ = client.txn(Txn::new().when(when).and_then(then)).await;
            }
            Job::Close => {
                let _ = client.lease_revoke(lease).await;
                break;
            }
        }
    }
}
