//! Fencing: a write that commits only while the token it was made under is current.
//!
//! A holder can lose its token without knowing it (a pause, a partition longer than
//! its lease): another process may hold it by the time its write arrives. Checking a
//! token before writing does not help, since the pause may fall between the check and
//! the write. A fenced write carries the check with it: etcd commits it only if, at
//! that revision, the token's key is still the one granted and the holder's lease is
//! alive. Resources outside etcd can do the same with [`Fence::value`]: remember the
//! largest fence seen and refuse a smaller one.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use crate::keys::session_key;

/// What a fenced write checks: the grant's key and revision, and the holder's lease.
///
/// `'static` and cheap to clone, so a writer task can keep it (see
/// [`FleetToken::fencing`](crate::FleetToken::fencing)).
///
/// ```no_run
/// # async fn demo(session: ownsync_etcd::Session) -> Result<(), ownsync_etcd::FleetError> {
/// let mutex = session.mutex("report");
/// let token = mutex.acquire().await?;
/// let fence = token.fencing();
/// let write = fence.txn([etcd_client::TxnOp::put("report/owner", "me", None)]);
/// if !session.client().txn(write).await?.succeeded() {
///     eprintln!("token {} lost: write refused", fence.value());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    key: String,
    revision: i64,
    lease: i64,
}

impl Fence {
    pub(crate) fn new(key: String, revision: i64, lease: i64) -> Fence {
        Fence { key, revision, lease }
    }

    /// The fencing token: the etcd revision that granted the token.
    pub fn value(&self) -> i64 {
        self.revision
    }

    /// The token's key in etcd (under `ownsync/limiter/<name>/q/`), for tools that
    /// read the limiter's history.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparisons: the token's key was last written at the granting revision (it
    /// was neither released nor reclaimed, and no one else was granted it), and the
    /// holder's lease key exists (the lease did not expire).
    pub fn compares(&self) -> Vec<Compare> {
        vec![
            Compare::mod_revision(self.key.as_str(), CompareOp::Equal, self.revision),
            Compare::version(session_key(self.lease), CompareOp::Greater, 0),
        ]
    }

    /// A transaction that runs `ops` only if [`compares`](Self::compares) hold.
    pub fn txn(&self, ops: impl Into<Vec<TxnOp>>) -> Txn {
        Txn::new().when(self.compares()).and_then(ops)
    }
}
