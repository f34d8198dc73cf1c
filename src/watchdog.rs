//! A thread that looks at the whole process every period (feature `diagnostics`).
//!
//! Why a thread: every other report of ownsync is lazy (checked when a primitive's slow
//! path runs again), so a process that is fully stalled, every task parked and nothing
//! polled, says nothing at all. The watchdog needs no runtime and no task of the
//! program to run: it takes a [`snapshot`] every period
//! and reports what it finds (waits that last, self-waits, wait-for cycles) once each,
//! to a callback and, with the `tracing` feature, as `WARN` events. Taking a snapshot
//! also runs each primitive's lazy checks, so the `set_long_wait_warning` and
//! `set_self_wait_warning` events fire during a stall too.

use std::collections::HashSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::id::OwnerId;
use crate::info::{ShowDuration, ShowSite, Site, WaitInfo};
use crate::snapshot::{PrimitiveSnapshot, Snapshot, WaitCycle, snapshot};

type OnReport = Box<dyn FnMut(&WatchdogReport) + Send>;

/// Starts a watchdog thread that takes a snapshot every `period` and reports each wait
/// that has lasted a `period` or more, each self-wait and each wait-for cycle, once, as
/// `WARN` events (target `ownsync`, feature `tracing`). It stops when the returned
/// handle is dropped. [`Watchdog`] sets a callback and the threshold.
///
/// # Panics
/// If `period` is zero, or the thread cannot be spawned.
///
/// ```
/// let _watchdog = ownsync::diagnostics::watchdog(std::time::Duration::from_secs(5));
/// // ... the program runs; a stall is reported within 10 s, even if nothing is polled.
/// ```
#[track_caller]
pub fn watchdog(period: Duration) -> WatchdogHandle {
    Watchdog::new(period).start()
}

/// A watchdog to configure before [`start`](Watchdog::start): its period, how long a
/// wait lasts before it is reported, and a callback for the reports.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// let (reports, received) = mpsc::channel();
/// let watchdog = ownsync::diagnostics::Watchdog::new(Duration::from_millis(1))
///     .overdue_after(Duration::ZERO)
///     .on_report(move |report| drop(reports.send(report.to_string())))
///     .start();
/// let sem = ownsync::Semaphore::with_name(0, "empty");
/// let waiter = std::thread::spawn(move || sem.blocking_acquire().map(drop));
/// let report = received.recv().unwrap(); // the first report that finds the wait
/// assert!(report.contains("semaphore \"empty\": 0 of 0 available"), "{report}");
/// drop(watchdog);
/// # drop(waiter);
/// ```
pub struct Watchdog {
    period: Duration,
    overdue_after: Option<Duration>,
    on_report: Option<OnReport>,
}

impl Watchdog {
    /// A watchdog that looks every `period`.
    ///
    /// # Panics
    /// If `period` is zero (it would spin a core).
    ///
    /// ```
    /// let watchdog = ownsync::diagnostics::Watchdog::new(std::time::Duration::from_secs(1));
    /// # drop(watchdog);
    /// ```
    #[track_caller]
    pub fn new(period: Duration) -> Self {
        assert!(!period.is_zero(), "a watchdog's period must not be zero");
        Watchdog { period, overdue_after: None, on_report: None }
    }

    /// Reports waits that have lasted `threshold` or more (default: the period). Zero
    /// reports every wait it sees.
    ///
    /// ```
    /// use std::time::Duration;
    /// let watchdog = ownsync::diagnostics::Watchdog::new(Duration::from_secs(1))
    ///     .overdue_after(Duration::from_secs(30));
    /// # drop(watchdog);
    /// ```
    pub fn overdue_after(mut self, threshold: Duration) -> Self {
        self.overdue_after = Some(threshold);
        self
    }

    /// Calls `on_report` on the watchdog's thread with every report that has something
    /// new (see [`WatchdogReport`]). A panic in it is caught: the watchdog goes on.
    ///
    /// ```
    /// let watchdog = ownsync::diagnostics::Watchdog::new(std::time::Duration::from_secs(1))
    ///     .on_report(|report| eprintln!("{report}"));
    /// # drop(watchdog);
    /// ```
    pub fn on_report(mut self, on_report: impl FnMut(&WatchdogReport) + Send + 'static) -> Self {
        self.on_report = Some(Box::new(on_report));
        self
    }

    /// Starts the thread (named `ownsync-watchdog`); it stops when the handle drops.
    /// With the `tracing` feature, its events go to the subscriber that is the default
    /// where `start` is called (a scoped one included), else to the global one.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    ///
    /// ```
    /// let handle = ownsync::diagnostics::Watchdog::new(std::time::Duration::from_secs(1)).start();
    /// drop(handle); // stops and joins the thread
    /// ```
    pub fn start(self) -> WatchdogHandle {
        let stop = Arc::new(Stop::default());
        #[cfg(feature = "tracing")]
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let thread = std::thread::Builder::new()
            .name("ownsync-watchdog".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    #[cfg(feature = "tracing")]
                    let _subscriber = tracing::dispatcher::set_default(&dispatch);
                    self.run(&stop)
                }
            })
            .expect("failed to spawn the watchdog thread");
        WatchdogHandle { stop, thread: Some(thread) }
    }

    fn run(mut self, stop: &Stop) {
        let overdue_after = self.overdue_after.unwrap_or(self.period);
        let mut reported = Reported::default();
        while !stop.wait(self.period) {
            let report = WatchdogReport::new(snapshot(), overdue_after, &mut reported);
            if report.is_empty() {
                continue;
            }
            report.trace();
            if let Some(on_report) = self.on_report.as_mut() {
                // The panic message went to the panic hook already; keep watching.
                let _ = catch_unwind(AssertUnwindSafe(|| on_report(&report)));
            }
        }
    }
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog")
            .field("period", &self.period)
            .field("overdue_after", &self.overdue_after.unwrap_or(self.period))
            .field("on_report", &self.on_report.is_some())
            .finish()
    }
}

/// The stop signal: set once, under its lock, by the handle's drop.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    signal: Condvar,
}

impl Stop {
    /// Waits up to `period`; whether the watchdog was stopped meanwhile.
    fn wait(&self, period: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (stopped, _) = self
            .signal
            .wait_timeout_while(stopped, period, |stopped| !*stopped)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *stopped
    }

    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.signal.notify_all();
    }
}

/// A running watchdog: dropping it stops the thread and waits for it to end (at most
/// one snapshot and one callback).
///
/// ```
/// let handle = ownsync::diagnostics::watchdog(std::time::Duration::from_secs(60));
/// drop(handle);
/// ```
pub struct WatchdogHandle {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchdogHandle {
    fn drop(&mut self) {
        self.stop.stop();
        let Some(thread) = self.thread.take() else { return };
        // Dropped by its own callback: the thread ends after it returns; joining here
        // would wait for ever.
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for WatchdogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogHandle").finish_non_exhaustive()
    }
}

/// What was reported already, so that a stall is told once, not every period: a wait
/// by its primitive, owner, site and permits; a cycle by its owners. A finding that is
/// gone is forgotten, so it is reported again if it comes back.
#[derive(Default)]
struct Reported {
    waits: HashSet<WaitKey>,
    cycles: HashSet<Vec<OwnerId>>,
}

type WaitKey = (usize, Option<OwnerId>, Site, usize);

/// What one look of a [`Watchdog`] found that it had not reported yet: waits that have
/// lasted (self-waits among them) and wait-for cycles, with the snapshot they are in.
/// Displays as the findings, then the snapshot's busy primitives (holders with sites,
/// `k of n available` for semaphores and limiters).
#[derive(Clone)]
pub struct WatchdogReport {
    snapshot: Snapshot,
    /// (primitive index, wait).
    overdue: Vec<(usize, WaitInfo)>,
    cycles: Vec<WaitCycle>,
}

impl WatchdogReport {
    fn new(snapshot: Snapshot, overdue_after: Duration, reported: &mut Reported) -> Self {
        let mut seen_waits = HashSet::new();
        let mut overdue = Vec::new();
        for (at, primitive) in snapshot.primitives().iter().enumerate() {
            for wait in primitive.waits() {
                if wait.waited_for() < overdue_after {
                    continue;
                }
                let key = (primitive_key(primitive), wait.owner(), wait.site(), wait.permits());
                if !reported.waits.contains(&key) {
                    overdue.push((at, wait.clone()));
                }
                seen_waits.insert(key);
            }
        }
        let mut seen_cycles = HashSet::new();
        let mut cycles = Vec::new();
        for cycle in snapshot.cycles() {
            let mut owners: Vec<OwnerId> = cycle.owners().collect();
            owners.sort();
            if !reported.cycles.contains(&owners) {
                cycles.push(cycle.clone());
            }
            seen_cycles.insert(owners);
        }
        *reported = Reported { waits: seen_waits, cycles: seen_cycles };
        WatchdogReport { snapshot, overdue, cycles }
    }

    fn is_empty(&self) -> bool {
        self.overdue.is_empty() && self.cycles.is_empty()
    }

    /// The waits that have lasted past the watchdog's threshold, new since its last
    /// report, each with its primitive.
    pub fn overdue_waits(&self) -> impl Iterator<Item = (&PrimitiveSnapshot, &WaitInfo)> {
        self.overdue.iter().map(|(at, wait)| (&self.snapshot.primitives()[*at], wait))
    }
    /// The overdue waits that are self-waits (an owner waiting for a hold it has itself:
    /// fine if a sibling sub-future releases it, a futurelock if none will).
    pub fn self_waits(&self) -> impl Iterator<Item = (&PrimitiveSnapshot, &WaitInfo)> {
        self.overdue_waits().filter(|(_, wait)| wait.is_self_wait())
    }
    /// The wait-for cycles (possible deadlocks) new since its last report.
    pub fn cycles(&self) -> &[WaitCycle] {
        &self.cycles
    }
    /// The whole snapshot the findings were made in.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// One `WARN` event per finding (feature `tracing`).
    fn trace(&self) {
        #[cfg(feature = "tracing")]
        for line in self.findings() {
            tracing::warn!(target: "ownsync", "watchdog: {line}");
        }
    }

    /// Each finding as one line.
    fn findings(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (primitive, wait) in self.overdue_waits() {
            let mut line = format!(
                "{} has waited {} at {} for {}",
                show_owner(wait.owner()),
                ShowDuration(wait.waited_for()),
                ShowSite(wait.site()),
                PrimitiveName(primitive)
            );
            if let Some(permits) = primitive.permits() {
                line += &format!(" ({permits}");
                let holders: Vec<String> = primitive
                    .holds()
                    .iter()
                    .filter_map(|hold| Some(format!("{} at {}", hold.owner()?, ShowSite(hold.site()))))
                    .collect();
                if !holders.is_empty() {
                    line += &format!("; held by {}", holders.join(", "));
                }
                if permits.unlisted() > 0 {
                    line += &format!("; {} permit(s) held but not listed", permits.unlisted());
                }
                line += ")";
            } else if let Some(hold) = primitive.holds().first() {
                line += &format!(" (held by {} at {})", show_owner(hold.owner()), ShowSite(hold.site()));
            }
            if wait.is_self_wait() {
                line += " [self-wait: its own owner holds it; a futurelock if no sibling releases it]";
            }
            lines.push(line);
        }
        for cycle in &self.cycles {
            let steps: Vec<String> = cycle
                .steps()
                .iter()
                .map(|step| {
                    format!(
                        "{} waits at {} for {}, held by {} (taken at {})",
                        step.waiter(),
                        ShowSite(step.wait_site()),
                        PrimitiveName(&self.snapshot.primitives()[step.primitive()]),
                        step.holder(),
                        ShowSite(step.hold_site())
                    )
                })
                .collect();
            lines.push(format!("possible deadlock, a cycle of {} owners: {}", steps.len(), steps.join("; ")));
        }
        lines
    }
}

/// A primitive's identity across snapshots: its kind, name and position are not enough
/// (two unnamed semaphores), so the registry's address of it.
fn primitive_key(primitive: &PrimitiveSnapshot) -> usize {
    primitive.identity()
}

fn show_owner(owner: Option<OwnerId>) -> String {
    owner.map_or_else(|| "an anonymous waiter".to_owned(), |owner| owner.to_string())
}

/// `semaphore "pool"`, or `semaphore` when unnamed.
struct PrimitiveName<'a>(&'a PrimitiveSnapshot);

impl fmt::Display for PrimitiveName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.kind())?;
        match self.0.name() {
            Some(name) => write!(f, " {name:?}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for WatchdogReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ownsync watchdog:")?;
        for line in self.findings() {
            writeln!(f, "  {line}")?;
        }
        write!(f, "{}", self.snapshot)
    }
}

impl fmt::Debug for WatchdogReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogReport")
            .field("overdue_waits", &self.overdue.iter().map(|(_, wait)| wait).collect::<Vec<_>>())
            .field("cycles", &self.cycles)
            .finish_non_exhaustive()
    }
}
