//! The errors of the fleet types. A broken fleet limiter names the holder that broke it
//! the way an in-process one does, with what a process boundary adds: which process,
//! under which lease.

use std::fmt;
use std::sync::Arc;

use ownsync::AbandonReason;

/// Why an acquire (or another call that asks etcd) failed.
///
/// ```
/// use ownsync_etcd::FleetError;
/// assert_eq!(FleetError::SessionLost.to_string(), "the session's lease was lost");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The limiter is broken: a holder went away without giving its token back.
    #[error(transparent)]
    Broken(#[from] FleetBrokenError),
    /// This process's lease expired (it was paused or cut off longer than its time to
    /// live): the holds it took may have been reclaimed or broken by others, and it must
    /// stop acting on them.
    #[error("the session's lease was lost")]
    SessionLost,
    /// `try_acquire` found no free token.
    #[error("no token is free")]
    WouldBlock,
    /// etcd refused the call or could not be reached.
    #[error("etcd: {0}")]
    Engine(#[from] etcd_client::Error),
}

/// The fleet limiter is broken: a holder went away without giving its token back.
///
/// Every waiter, now and later, in every process, gets this error until
/// [`FleetLimiter::try_repair`](crate::FleetLimiter::try_repair). It names the limiter,
/// the holder (its process, its lease, the tracked task that held the token if any,
/// and where the token was acquired), and how the holder went away.
///
/// ```
/// # use ownsync_etcd::FleetBrokenError;
/// fn explain(err: &FleetBrokenError) -> String {
///     format!("{} (lease {:x}, {})", err.reason(), err.lease(), err.process())
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FleetBrokenError(Arc<BrokenBy>);

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BrokenBy {
    pub(crate) limiter: String,
    pub(crate) reason: AbandonReason,
    pub(crate) holder: HolderInfo,
}

/// Who held a token, as written beside it in etcd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HolderInfo {
    pub(crate) lease: i64,
    pub(crate) process: String,
    pub(crate) task: Option<String>,
    pub(crate) site: Option<String>,
}

impl HolderInfo {
    /// `key=value` lines: what a hold key or the broken key holds.
    pub(crate) fn encode(&self, reason: Option<AbandonReason>) -> String {
        let mut out = format!("lease={:x}\nprocess={}\n", self.lease, self.process.replace('\n', " "));
        if let Some(task) = &self.task {
            out.push_str(&format!("task={task}\n"));
        }
        if let Some(site) = &self.site {
            out.push_str(&format!("site={site}\n"));
        }
        if let Some(reason) = reason {
            out.push_str(&format!("reason={}\n", reason_code(reason)));
        }
        out
    }

    pub(crate) fn decode(text: &str) -> (HolderInfo, Option<AbandonReason>) {
        let mut info = HolderInfo::default();
        let mut reason = None;
        for line in text.lines() {
            let Some((field, value)) = line.split_once('=') else { continue };
            match field {
                "lease" => info.lease = i64::from_str_radix(value, 16).unwrap_or(0),
                "process" => info.process = value.to_owned(),
                "task" => info.task = Some(value.to_owned()),
                "site" => info.site = Some(value.to_owned()),
                "reason" => reason = reason_from_code(value),
                _ => {}
            }
        }
        (info, reason)
    }
}

fn reason_code(reason: AbandonReason) -> &'static str {
    match reason {
        AbandonReason::Exited => "exited",
        AbandonReason::Cancelled => "cancelled",
        AbandonReason::Panicked => "panicked",
        _ => "lease-expired",
    }
}

fn reason_from_code(code: &str) -> Option<AbandonReason> {
    Some(match code {
        "exited" => AbandonReason::Exited,
        "cancelled" => AbandonReason::Cancelled,
        "panicked" => AbandonReason::Panicked,
        "lease-expired" => AbandonReason::LeaseExpired,
        _ => return None,
    })
}

impl FleetBrokenError {
    pub(crate) fn new(limiter: &str, value: &[u8]) -> Self {
        let (holder, reason) = HolderInfo::decode(&String::from_utf8_lossy(value));
        FleetBrokenError(Arc::new(BrokenBy {
            limiter: limiter.to_owned(),
            reason: reason.unwrap_or(AbandonReason::LeaseExpired),
            holder,
        }))
    }
    /// How the holder went away: [`AbandonReason::LeaseExpired`] for a process that
    /// died, paused or was cut off past its lease (or an etcd that was unreachable that
    /// long); `Exited`, `Cancelled` or `Panicked` for a tracked task that ended holding.
    pub fn reason(&self) -> AbandonReason {
        self.0.reason
    }
    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.0.limiter
    }
    /// The holder's process, as it described itself (`pid N on HOST`).
    pub fn process(&self) -> &str {
        &self.0.holder.process
    }
    /// The holder's etcd lease.
    pub fn lease(&self) -> i64 {
        self.0.holder.lease
    }
    /// The tracked task that held the token (`task#N`), if it was taken in one.
    pub fn task(&self) -> Option<&str> {
        self.0.holder.task.as_deref()
    }
    /// Where the token was acquired (`file:line:column`).
    pub fn site(&self) -> Option<&str> {
        self.0.holder.site.as_deref()
    }
}

impl fmt::Debug for FleetBrokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBrokenError")
            .field("name", &self.0.limiter)
            .field("reason", &self.0.reason)
            .field("process", &self.0.holder.process)
            .field("lease", &format_args!("{:x}", self.0.holder.lease))
            .field("task", &self.0.holder.task)
            .field("site", &self.0.holder.site)
            .finish()
    }
}

impl fmt::Display for FleetBrokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BrokenBy { limiter, reason, holder } = &*self.0;
        write!(f, "fleet limiter {limiter:?} is broken: {} (lease {:x})", holder.process, holder.lease)?;
        if let Some(task) = &holder.task {
            write!(f, " {task}")?;
        }
        write!(f, " {reason} while holding it")?;
        if let Some(site) = &holder.site {
            write!(f, " (taken at {site})")?;
        }
        Ok(())
    }
}

impl std::error::Error for FleetBrokenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_record_round_trips_and_reads_like_the_in_process_error() {
        let holder = HolderInfo {
            lease: 0x694d,
            process: "pid 7 on db-1".into(),
            task: Some("task#3".into()),
            site: Some("src/main.rs:10:5".into()),
        };
        let err = FleetBrokenError::new("db", holder.encode(Some(AbandonReason::LeaseExpired)).as_bytes());
        assert_eq!(err.reason(), AbandonReason::LeaseExpired);
        assert_eq!(
            (err.process(), err.lease(), err.task(), err.site()),
            ("pid 7 on db-1", 0x694d, Some("task#3"), Some("src/main.rs:10:5"))
        );
        assert_eq!(
            err.to_string(),
            "fleet limiter \"db\" is broken: pid 7 on db-1 (lease 694d) task#3 lost its lease \
             (holder or engine unreachable) while holding it (taken at src/main.rs:10:5)"
        );
    }
}
