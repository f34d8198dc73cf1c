//! The etcd key layout shared by sessions, limiters and fences: a session's liveness key,
//! a limiter's queue and broken keys, and the conditional delete of a hold's key. A leaf:
//! the sessions and limiters build on it, it knows neither.

use etcd_client::{Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use ownsync::AbandonReason;

use crate::error::{FleetError, HolderInfo};

/// The key that says the process holding `lease` is alive.
pub(crate) fn session_key(lease: i64) -> String {
    format!("ownsync/session/{lease:016x}")
}

/// The etcd keys of one limiter.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) broken: String,
}

impl Keys {
    pub(crate) fn new(name: &str) -> Keys {
        // `/` and `%` escaped, so that no limiter's prefix is inside another's.
        let escaped = name.replace('%', "%25").replace('/', "%2F");
        let prefix = format!("ownsync/limiter/{escaped}/");
        Keys { name: name.to_owned(), queue: format!("{prefix}q/"), broken: format!("{prefix}broken") }
    }

    pub(crate) fn hold_key(&self, lease: i64, sequence: u64) -> String {
        format!("{}{lease:016x}-{sequence:016x}", self.queue)
    }

    /// A transaction step that writes the broken key unless it is there already (the
    /// first abandonment is the one named).
    pub(crate) fn break_op(&self, holder: &HolderInfo, reason: AbandonReason) -> TxnOp {
        let write = TxnOp::put(self.broken.as_str(), holder.encode(Some(reason)), None);
        TxnOp::txn(
            Txn::new().when([Compare::version(self.broken.as_str(), CompareOp::Equal, 0)]).and_then([write]),
        )
    }

    /// The reads of one consistent look at the limiter.
    pub(crate) fn snapshot_ops(&self) -> [TxnOp; 3] {
        let queue = GetOptions::new().with_prefix().with_sort(SortTarget::Create, SortOrder::Ascend);
        let sessions = GetOptions::new().with_prefix().with_keys_only();
        [
            TxnOp::get(self.queue.as_str(), Some(queue)),
            TxnOp::get(self.broken.as_str(), None),
            TxnOp::get("ownsync/session/", Some(sessions)),
        ]
    }
}

/// Deletes a hold's key if it is still that hold.
pub(crate) async fn delete_hold(
    client: &mut Client,
    key: &str,
    create_revision: i64,
) -> Result<(), FleetError> {
    let when = [Compare::create_revision(key, CompareOp::Equal, create_revision)];
    client.txn(Txn::new().when(when).and_then([TxnOp::delete(key, None)])).await?;
    Ok(())
}
