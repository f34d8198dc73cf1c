//! The fleet limiter: a queue of keys in etcd, ordered by create revision.
//!
//! An acquire puts one key under the limiter's queue prefix (not attached to any lease)
//! and reads the queue in the same transaction. The first `total` keys hold a token;
//! the others wait, each watching only what can let it in: the head waiter (rank
//! `total`) watches the removals from the queue (a holder's release), any other waiter
//! its predecessor, whose grant (a rewrite of its key) or removal moves the queue.
//! Every waiter also watches the removals of session keys (a process's lease expiring:
//! rare) and the limiter's broken key. So a release wakes one waiter, never the whole
//! queue.
//!
//! A key whose process's session key is gone (its lease expired) is settled by the
//! first process that sees it, in a transaction that checks both facts again: a waiter
//! is removed; a holder, under `Break`, is removed and the broken key written (naming
//! the holder), under `Reclaim` only removed.

use std::collections::HashSet;
use std::future::Future;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchFilterType, WatchOptions,
};
use ownsync::{
    AbandonPolicy, AbandonReason, ExternalAbandonment, ExternalHold, OwnerHook, register_external_hold,
};
use tokio::sync::mpsc;

use crate::error::{FleetBrokenError, FleetError, HolderInfo};
use crate::fence::Fence;
use crate::keys::{Keys, delete_hold, session_key};
use crate::session::{Job, Session};

/// A limit of `total_tokens` shared by every process that names it, on etcd.
///
/// Made by [`Session::limiter`] or [`Session::mutex`]. Grants are first come, first
/// served across the fleet (by the etcd revision of each request). A holder that goes
/// away holding a token (its process dies, pauses or is cut off past its lease; or a
/// tracked task ends with the token leaked) breaks the limiter for every waiter in
/// every process, naming it, or under [`AbandonPolicy::Reclaim`] gives the token back.
///
/// ```no_run
/// # async fn demo(session: ownsync_etcd::Session) -> Result<(), ownsync_etcd::FleetError> {
/// let limiter = session.limiter("downstream", 2, ownsync::AbandonPolicy::Break);
/// let token = limiter.acquire().await?;
/// println!("granted at revision {}", token.fence());
/// token.release().await?;
/// # Ok(()) }
/// ```
pub struct FleetLimiter {
    session: Session,
    keys: Keys,
    total: usize,
    policy: AbandonPolicy,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    grants: AtomicU64,
    needless_wakeups: AtomicU64,
    settled_waiters: AtomicU64,
    settled_holders: AtomicU64,
}

/// One key of the queue.
#[derive(Clone, Debug)]
struct Entry {
    key: String,
    create_revision: i64,
    lease: i64,
    value: Vec<u8>,
}

/// The queue, the broken key and the live leases at one revision.
struct Snapshot {
    revision: i64,
    queue: Vec<Entry>,
    broken: Option<Vec<u8>>,
    live: HashSet<i64>,
}

impl Snapshot {
    fn parse(response: &TxnResponse, first_op: usize) -> Snapshot {
        let revision = response.header().map_or(0, |header| header.revision());
        let ops = response.op_responses();
        let get = |index: usize| match ops.get(first_op + index) {
            Some(TxnOpResponse::Get(get)) => get.kvs().to_vec(),
            _ => Vec::new(),
        };
        let queue = get(0)
            .into_iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let lease = lease_of(&key);
                Entry { key, create_revision: kv.create_revision(), lease, value: kv.value().to_vec() }
            })
            .collect();
        let broken = get(1).first().map(|kv| kv.value().to_vec());
        let live = get(2)
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                i64::from_str_radix(key.rsplit('/').next()?, 16).ok()
            })
            .collect();
        Snapshot { revision, queue, broken, live }
    }
}

/// The lease a queue key was written under (`.../q/<lease>-<sequence>`).
fn lease_of(key: &str) -> i64 {
    let last = key.rsplit('/').next().unwrap_or("");
    last.split('-').next().and_then(|lease| i64::from_str_radix(lease, 16).ok()).unwrap_or(0)
}

/// What the queue says to a request with key `mine`.
enum Decision {
    Broken(FleetBrokenError),
    /// Our key is gone: someone found our lease expired and removed it.
    Gone,
    /// Keys ahead of ours whose process's lease is gone: (entry, holds a token).
    Settle(Vec<(Entry, bool)>),
    Granted,
    /// Waiting at this rank: the head waiter (`None`) for any removal from the queue,
    /// any other for a change of its predecessor's key (`Some`).
    Wait(usize, Option<String>),
}

fn decide(snapshot: &Snapshot, keys: &Keys, mine: &str, total: usize) -> Decision {
    if let Some(broken) = &snapshot.broken {
        return Decision::Broken(FleetBrokenError::new(&keys.name, broken));
    }
    let Some(rank) = snapshot.queue.iter().position(|entry| entry.key == mine) else { return Decision::Gone };
    let ahead = &snapshot.queue[..rank];
    let dead: Vec<(Entry, bool)> = ahead
        .iter()
        .enumerate()
        .filter(|(_, entry)| !snapshot.live.contains(&entry.lease))
        .map(|(index, entry)| (entry.clone(), index < total))
        .collect();
    if !dead.is_empty() {
        return Decision::Settle(dead);
    }
    if rank < total {
        return Decision::Granted;
    }
    Decision::Wait(rank, (rank > total).then(|| ahead[rank - 1].key.clone()))
}

/// A request's key while it waits: removed in the background if the acquire is
/// dropped (cancelled) or fails.
struct Queued {
    key: String,
    create_revision: i64,
    jobs: Option<mpsc::UnboundedSender<Job>>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(Job::Release {
                key: std::mem::take(&mut self.key),
                create_revision: self.create_revision,
            });
        }
    }
}

/// Tells the session to break (or reclaim) a token whose tracked task ended holding it.
struct LeakHook {
    jobs: mpsc::UnboundedSender<Job>,
    keys: Keys,
    policy: AbandonPolicy,
    holder: HolderInfo,
    /// The granted key and its create revision, once granted.
    granted: OnceLock<(String, i64)>,
}

impl OwnerHook for LeakHook {
    fn abandoned(&self, abandonment: &ExternalAbandonment) {
        let Some((key, create_revision)) = self.granted.get() else { return };
        let mut holder = self.holder.clone();
        holder.task = Some(abandonment.owner().to_string());
        let _ = self.jobs.send(Job::Abandoned {
            keys: self.keys.clone(),
            key: key.clone(),
            create_revision: *create_revision,
            policy: self.policy,
            holder,
            reason: abandonment.reason(),
        });
    }
}

impl FleetLimiter {
    pub(crate) fn new(session: Session, name: &str, total: usize, policy: AbandonPolicy) -> FleetLimiter {
        FleetLimiter { session, keys: Keys::new(name), total, policy, counters: Counters::default() }
    }

    /// Waits for a token, first come first served across the fleet.
    ///
    /// Errors: [`FleetError::Broken`] if the limiter is broken or breaks while waiting,
    /// [`FleetError::SessionLost`] if this process's lease is lost, `Engine` if etcd
    /// fails. Cancel-safe: a dropped acquire removes its request in the background.
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
    /// let token = limiter.acquire().await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<FleetToken<'_>, FleetError>> + Send + '_ {
        let site = Location::caller();
        self.acquire_at(site, true)
    }

    /// Takes a token if one is free now (asking etcd once), else
    /// [`FleetError::WouldBlock`]; never jumps ahead of a waiter.
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) {
    /// match limiter.try_acquire().await {
    ///     Ok(token) => drop(token),
    ///     Err(ownsync_etcd::FleetError::WouldBlock) => println!("busy"),
    ///     Err(other) => eprintln!("{other}"),
    /// }
    /// # }
    /// ```
    #[track_caller]
    pub fn try_acquire(&self) -> impl Future<Output = Result<FleetToken<'_>, FleetError>> + Send + '_ {
        let site = Location::caller();
        self.acquire_at(site, false)
    }

    async fn acquire_at(
        &self,
        site: &'static Location<'static>,
        wait: bool,
    ) -> Result<FleetToken<'_>, FleetError> {
        let session = &self.session.inner;
        if self.session.is_lost() {
            return Err(FleetError::SessionLost);
        }
        let hook = Arc::new(LeakHook {
            jobs: session.jobs.clone(),
            keys: self.keys.clone(),
            policy: self.policy,
            holder: HolderInfo {
                lease: session.lease,
                process: session.process.clone(),
                task: None,
                site: Some(site.to_string()),
            },
            granted: OnceLock::new(),
        });
        let registration = register_external_hold(hook.clone(), Some(site));
        let mut holder = hook.holder.clone();
        holder.task = registration.owner().map(|owner| owner.to_string());
        let key = self.keys.hold_key(session.lease, self.session.next_sequence());
        let mut client = session.client.clone();
        let when = [
            Compare::version(self.keys.broken.as_str(), CompareOp::Equal, 0),
            Compare::version(session_key(session.lease), CompareOp::Greater, 0),
        ];
        let mut then = vec![TxnOp::put(key.as_str(), holder.encode(None), None)];
        then.extend(self.keys.snapshot_ops());
        let response =
            client.txn(Txn::new().when(when).and_then(then).or_else(self.keys.snapshot_ops())).await?;
        if !response.succeeded() {
            let snapshot = Snapshot::parse(&response, 0);
            return Err(match snapshot.broken {
                Some(broken) => FleetBrokenError::new(&self.keys.name, &broken).into(),
                None => FleetError::SessionLost,
            });
        }
        let create_revision = response.header().map_or(0, |header| header.revision());
        let mut queued = Queued { key: key.clone(), create_revision, jobs: Some(session.jobs.clone()) };
        let mut snapshot = Snapshot::parse(&response, 1);
        let mut waited = false;
        let mut last_rank = None;
        let mut fence = create_revision;
        loop {
            match decide(&snapshot, &self.keys, &key, self.total) {
                Decision::Broken(err) => return Err(err.into()),
                Decision::Gone => {
                    queued.jobs = None;
                    return Err(FleetError::SessionLost);
                }
                Decision::Settle(dead) => {
                    for (entry, holds) in dead {
                        self.settle(&mut client, &entry, holds).await?;
                    }
                }
                Decision::Granted if !waited => break,
                Decision::Granted => {
                    // Rewriting the key is the grant its successor watches for; its
                    // revision is the fencing token.
                    let when = [
                        Compare::create_revision(key.as_str(), CompareOp::Equal, create_revision),
                        Compare::version(self.keys.broken.as_str(), CompareOp::Equal, 0),
                    ];
                    let mut granted_value = holder.encode(None);
                    granted_value.push_str("granted=1\n");
                    let grant = TxnOp::put(key.as_str(), granted_value, None);
                    let response = client.txn(Txn::new().when(when).and_then([grant])).await?;
                    if response.succeeded() {
                        fence = response.header().map_or(0, |header| header.revision());
                        break;
                    }
                }
                Decision::Wait(rank, watched) => {
                    if !wait {
                        queued.jobs = None;
                        delete_hold(&mut client, &key, create_revision).await?;
                        return Err(FleetError::WouldBlock);
                    }
                    // Woken, and no nearer the front: a wake-up a herd would cause.
                    if last_rank.is_some_and(|last| rank >= last) {
                        self.counters.needless_wakeups.fetch_add(1, Relaxed);
                    }
                    waited = true;
                    let ahead: HashSet<i64> =
                        snapshot.queue[..rank].iter().map(|entry| entry.lease).collect();
                    let woken = self.wait_for_change(&mut client, watched, &ahead, snapshot.revision).await?;
                    // The look once per time to live is no wake-up.
                    last_rank = woken.then_some(rank);
                }
            }
            snapshot = self.read(&mut client).await?;
        }
        queued.jobs = None;
        let _ = hook.granted.set((key.clone(), create_revision));
        self.counters.grants.fetch_add(1, Relaxed);
        Ok(FleetToken { limiter: self, key, create_revision, fence, registration: Some(registration) })
    }

    async fn read(&self, client: &mut Client) -> Result<Snapshot, FleetError> {
        let response = client.txn(Txn::new().and_then(self.keys.snapshot_ops())).await?;
        Ok(Snapshot::parse(&response, 0))
    }

    /// Waits until what `predecessor` names changes after `revision` (see
    /// [`Decision::Wait`]), or the broken key, or the session key of a process with a
    /// key ahead of ours (`leases_ahead`) is removed, or this session is lost. `false`
    /// if nothing changed for a time to live (a look then, in case a watch was lost).
    async fn wait_for_change(
        &self,
        client: &mut Client,
        predecessor: Option<String>,
        leases_ahead: &HashSet<i64>,
        revision: i64,
    ) -> Result<bool, FleetError> {
        let options = || WatchOptions::new().with_start_revision(revision + 1);
        let removals = || options().with_prefix().with_filters([WatchFilterType::NoPut]);
        let changed = async {
            let mut stream = client.watch(self.keys.broken.as_str(), Some(options())).await?;
            stream.watch("ownsync/session/", Some(removals())).await?;
            match predecessor {
                Some(key) => stream.watch(key, Some(options())).await?,
                None => stream.watch(self.keys.queue.as_str(), Some(removals())).await?,
            }
            while let Some(response) = stream.message().await? {
                // A session of a process with no key ahead of ours ended: not our concern.
                let concerns_us = |event: &etcd_client::Event| {
                    let Some(key) = event.kv().map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
                    else {
                        return true;
                    };
                    match key.strip_prefix("ownsync/session/") {
                        Some(lease) => {
                            i64::from_str_radix(lease, 16).map_or(true, |lease| leases_ahead.contains(&lease))
                        }
                        None => true,
                    }
                };
                if response.canceled() || response.events().iter().any(concerns_us) {
                    break;
                }
            }
            Ok::<bool, FleetError>(true)
        };
        tokio::select! {
            changed = changed => changed,
            () = self.session.lost() => Err(FleetError::SessionLost),
            () = tokio::time::sleep(self.session.ttl().max(Duration::from_secs(1))) => Ok(false),
        }
    }

    /// Settles the key of a process whose lease is gone, if it still is that key and the
    /// lease is still gone.
    async fn settle(&self, client: &mut Client, entry: &Entry, holds: bool) -> Result<(), FleetError> {
        let when = [
            Compare::create_revision(entry.key.as_str(), CompareOp::Equal, entry.create_revision),
            Compare::version(session_key(entry.lease), CompareOp::Equal, 0),
        ];
        let mut then = vec![TxnOp::delete(entry.key.as_str(), None)];
        if holds && self.policy == AbandonPolicy::Break {
            let (holder, _) = HolderInfo::decode(&String::from_utf8_lossy(&entry.value));
            then.push(self.keys.break_op(&holder, AbandonReason::LeaseExpired));
        }
        if client.txn(Txn::new().when(when).and_then(then)).await?.succeeded() {
            let counter = if holds { &self.counters.settled_holders } else { &self.counters.settled_waiters };
            counter.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Whether the limiter is broken. Asks etcd, and settles first any holder whose
    /// lease is gone (so a holder that died while nobody waited is found here too).
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
    /// if limiter.is_broken().await? {
    ///     eprintln!("{}", limiter.broken().await?.unwrap());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn is_broken(&self) -> Result<bool, FleetError> {
        Ok(self.broken().await?.is_some())
    }

    /// Why the limiter is broken, if it is (see [`is_broken`](Self::is_broken)).
    pub async fn broken(&self) -> Result<Option<FleetBrokenError>, FleetError> {
        let mut client = self.session.inner.client.clone();
        let mut snapshot = self.read(&mut client).await?;
        if snapshot.broken.is_none() {
            let dead: Vec<Entry> = snapshot.queue[..self.total.min(snapshot.queue.len())]
                .iter()
                .filter(|entry| !snapshot.live.contains(&entry.lease))
                .cloned()
                .collect();
            if !dead.is_empty() {
                for entry in &dead {
                    self.settle(&mut client, entry, true).await?;
                }
                snapshot = self.read(&mut client).await?;
            }
        }
        Ok(snapshot.broken.map(|broken| FleetBrokenError::new(&self.keys.name, &broken)))
    }

    /// Makes a broken limiter whole again: removes the broken record and the keys of
    /// every process whose lease is gone, so the tokens they held return. Call it once
    /// whatever the broken holder guarded is known to be consistent. `true` if it was
    /// broken.
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
    /// if limiter.try_repair().await? {
    ///     println!("repaired");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_repair(&self) -> Result<bool, FleetError> {
        let mut client = self.session.inner.client.clone();
        let snapshot = self.read(&mut client).await?;
        for entry in snapshot.queue.iter().filter(|entry| !snapshot.live.contains(&entry.lease)) {
            let when = [
                Compare::create_revision(entry.key.as_str(), CompareOp::Equal, entry.create_revision),
                Compare::version(session_key(entry.lease), CompareOp::Equal, 0),
            ];
            client.txn(Txn::new().when(when).and_then([TxnOp::delete(entry.key.as_str(), None)])).await?;
        }
        let Some(broken) = snapshot.broken else { return Ok(false) };
        let _ = broken;
        let response = client.delete(self.keys.broken.as_str(), None).await?;
        Ok(response.deleted() > 0)
    }

    /// What etcd says of the limiter now (tokens held, requests waiting, broken), and
    /// what this process's handle counted.
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
    /// let stats = limiter.statistics().await?;
    /// assert!(stats.held() <= stats.total_tokens());
    /// # Ok(()) }
    /// ```
    pub async fn statistics(&self) -> Result<FleetStatistics, FleetError> {
        let mut client = self.session.inner.client.clone();
        let snapshot = self.read(&mut client).await?;
        let queued = snapshot.queue.len();
        Ok(FleetStatistics {
            total_tokens: self.total,
            held: queued.min(self.total),
            waiting: queued.saturating_sub(self.total),
            broken: snapshot.broken.is_some(),
            grants: self.counters.grants.load(Relaxed),
            needless_wakeups: self.counters.needless_wakeups.load(Relaxed),
            settled_holders: self.counters.settled_holders.load(Relaxed),
            settled_waiters: self.counters.settled_waiters.load(Relaxed),
        })
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.keys.name
    }

    /// How many tokens the limiter has.
    pub fn total_tokens(&self) -> usize {
        self.total
    }

    /// The session the limiter acquires for.
    pub fn session(&self) -> &Session {
        &self.session
    }
}

impl std::fmt::Debug for FleetLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLimiter")
            .field("name", &self.keys.name)
            .field("total_tokens", &self.total)
            .field("policy", &self.policy)
            .finish()
    }
}

/// A fleet limiter's state as etcd has it, and what this process's handle counted.
///
/// ```no_run
/// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
/// let stats = limiter.statistics().await?;
/// println!("{} of {} held, {} waiting", stats.held(), stats.total_tokens(), stats.waiting());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetStatistics {
    total_tokens: usize,
    held: usize,
    waiting: usize,
    broken: bool,
    grants: u64,
    needless_wakeups: u64,
    settled_holders: u64,
    settled_waiters: u64,
}

impl FleetStatistics {
    /// The limiter's tokens.
    pub fn total_tokens(&self) -> usize {
        self.total_tokens
    }
    /// Tokens held now, fleet-wide (a dead holder not yet found counts as held).
    pub fn held(&self) -> usize {
        self.held
    }
    /// Requests waiting now, fleet-wide.
    pub fn waiting(&self) -> usize {
        self.waiting
    }
    /// Whether the limiter is broken.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
    /// Tokens this handle granted.
    pub fn grants(&self) -> u64 {
        self.grants
    }
    /// Times a waiter of this handle was woken and found itself no nearer the front: 0
    /// but for cancelled waiters and lease expiries (a waiter is woken only by a change
    /// that moves it up: a holder's release for the head waiter, its predecessor's
    /// grant or removal for any other).
    pub fn needless_wakeups(&self) -> u64 {
        self.needless_wakeups
    }
    /// Holders of other processes whose lease expired, settled by this handle (broken
    /// or reclaimed, per the policy).
    pub fn settled_holders(&self) -> u64 {
        self.settled_holders
    }
    /// Waiters of other processes whose lease expired, removed by this handle.
    pub fn settled_waiters(&self) -> u64 {
        self.settled_waiters
    }
}

/// A token of a [`FleetLimiter`]: released by [`release`](Self::release), or when
/// dropped (in the background, on the session's task).
///
/// [`fence`](Self::fence) is the etcd revision that granted it: a fencing token, larger
/// for every later grant of a mutex. Writes that must not happen once the token is lost
/// go through [`fenced`](Self::fenced) (or carry [`fence`](Self::fence) to a resource
/// that checks it).
#[must_use = "dropping the token releases it at once"]
pub struct FleetToken<'a> {
    limiter: &'a FleetLimiter,
    key: String,
    create_revision: i64,
    fence: i64,
    registration: Option<ExternalHold>,
}

impl FleetToken<'_> {
    /// The etcd revision that granted this token (its fencing token).
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
    /// let first = limiter.acquire().await?;
    /// let fence = first.fence();
    /// first.release().await?;
    /// assert!(limiter.acquire().await?.fence() > fence);
    /// # Ok(()) }
    /// ```
    pub fn fence(&self) -> i64 {
        self.fence
    }

    /// What a fenced write checks, as a value that may move into another task.
    pub fn fencing(&self) -> Fence {
        Fence::new(self.key.clone(), self.fence, self.limiter.session.lease())
    }

    /// The etcd comparisons that hold only while this token is current and its
    /// session's lease alive (see [`Fence::compares`]).
    pub fn fence_compares(&self) -> Vec<Compare> {
        self.fencing().compares()
    }

    /// A transaction that runs `ops` only while this token is current and the lease
    /// alive; commit it with the session's [`client`](Session::client) and check
    /// `succeeded()`.
    ///
    /// ```no_run
    /// # async fn demo(session: ownsync_etcd::Session) -> Result<(), ownsync_etcd::FleetError> {
    /// let mutex = session.mutex("schema");
    /// let token = mutex.acquire().await?;
    /// let write = token.fenced([etcd_client::TxnOp::put("schema/version", "7", None)]);
    /// let committed = session.client().txn(write).await?.succeeded();
    /// # Ok(()) }
    /// ```
    pub fn fenced(&self, ops: impl Into<Vec<TxnOp>>) -> Txn {
        self.fencing().txn(ops)
    }

    /// Releases the token and waits until etcd has it back.
    ///
    /// ```no_run
    /// # async fn demo(limiter: ownsync_etcd::FleetLimiter) -> Result<(), ownsync_etcd::FleetError> {
    /// limiter.acquire().await?.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<(), FleetError> {
        let registration = self.registration.take().expect("a token's registration is taken once");
        if registration.release() {
            let mut client = self.limiter.session.inner.client.clone();
            delete_hold(&mut client, &self.key, self.create_revision).await?;
        }
        Ok(())
    }
}

impl Drop for FleetToken<'_> {
    fn drop(&mut self) {
        if let Some(registration) = self.registration.take() {
            if registration.release() {
                let job = Job::Release {
                    key: std::mem::take(&mut self.key),
                    create_revision: self.create_revision,
                };
                let _ = self.limiter.session.inner.jobs.send(job);
            }
        }
    }
}

impl std::fmt::Debug for FleetToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetToken")
            .field("limiter", &self.limiter.keys.name)
            .field("fence", &self.fence)
            .finish()
    }
}

/// The limiters a session makes (here, beside the type they make).
impl Session {
    /// A limiter of `total_tokens` named `name`, shared by every session that names it
    /// (every process must give the same total and policy). Under
    /// [`AbandonPolicy::Break`] a holder that goes away holding a token breaks it for
    /// everyone until [`FleetLimiter::try_repair`]; under [`AbandonPolicy::Reclaim`] its
    /// token returns to the pool.
    ///
    /// # Panics
    /// If `total_tokens` is 0.
    ///
    /// ```no_run
    /// # async fn demo(session: ownsync_etcd::Session) -> Result<(), ownsync_etcd::FleetError> {
    /// let connections = session.limiter("db-connections", 50, ownsync::AbandonPolicy::Reclaim);
    /// let token = connections.acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn limiter(&self, name: &str, total_tokens: usize, policy: AbandonPolicy) -> FleetLimiter {
        assert!(total_tokens > 0, "a fleet limiter needs at least one token");
        FleetLimiter::new(self.clone(), name, total_tokens, policy)
    }

    /// A fleet-wide mutex: a limiter of one token that breaks when its holder goes away
    /// holding it (what it guards may be half-updated, so it never reclaims).
    ///
    /// ```no_run
    /// # async fn demo(session: ownsync_etcd::Session) -> Result<(), ownsync_etcd::FleetError> {
    /// let migration = session.mutex("migration");
    /// let token = migration.acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn mutex(&self, name: &str) -> FleetLimiter {
        self.limiter(name, 1, AbandonPolicy::Break)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, lease: i64, create_revision: i64) -> Entry {
        Entry { key: key.into(), create_revision, lease, value: Vec::new() }
    }

    fn snapshot(queue: Vec<Entry>, live: &[i64]) -> Snapshot {
        Snapshot { revision: 10, queue, broken: None, live: live.iter().copied().collect() }
    }

    #[test]
    fn names_are_escaped_so_no_prefix_holds_another() {
        assert_eq!(Keys::new("a/q").queue, "ownsync/limiter/a%2Fq/q/");
        assert!(!Keys::new("a/q").queue.starts_with(&Keys::new("a").queue));
        assert_eq!(lease_of(&Keys::new("x").hold_key(0xabc, 7)), 0xabc);
    }

    #[test]
    fn the_head_waiter_watches_the_holders_and_any_other_its_predecessor() {
        let keys = Keys::new("l");
        let queue = vec![entry("a", 1, 1), entry("b", 2, 2), entry("c", 3, 3), entry("d", 4, 4)];
        let snap = snapshot(queue, &[1, 2, 3, 4]);
        assert!(matches!(decide(&snap, &keys, "b", 2), Decision::Granted));
        let Decision::Wait(2, head) = decide(&snap, &keys, "c", 2) else { panic!() };
        assert_eq!(head, None);
        let Decision::Wait(3, next) = decide(&snap, &keys, "d", 2) else { panic!() };
        assert_eq!(next.as_deref(), Some("c"));
    }

    #[test]
    fn dead_keys_ahead_are_settled_holders_marked() {
        let keys = Keys::new("l");
        let snap = snapshot(vec![entry("a", 1, 1), entry("b", 2, 2), entry("c", 3, 3)], &[2, 3]);
        let Decision::Settle(dead) = decide(&snap, &keys, "c", 1) else { panic!() };
        assert_eq!(
            dead.iter().map(|(entry, holds)| (entry.key.as_str(), *holds)).collect::<Vec<_>>(),
            [("a", true)]
        );
        assert!(matches!(decide(&snap, &keys, "zz", 1), Decision::Gone));
    }
}
