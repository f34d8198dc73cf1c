//! Pool exhaustion made visible: a semaphore's and a limiter's holders in `statistics()`,
//! `Debug` and the process-wide snapshot (`k of n available`, every holder that can be
//! listed with owner, site and age, the rest counted as not listed), and the watchdog
//! thread that reports a fully stalled process. Tasks are driven by hand (`Polled`) and
//! the watchdog's reports are waited for on a channel: nothing here sleeps.

mod common;

use std::future::pending;
use std::sync::Arc;

use common::Polled;
use ownsync::{CapacityLimiter, Event, OwnerId, Semaphore, tracked};

/// A tracked task that takes a limiter token and then waits for `release`: stuck
/// holding it until then. Returns the task (polled once: it holds) and its owner.
fn limiter_holder(
    limiter: &CapacityLimiter,
    release: &Arc<Event>,
) -> (Polled<impl std::future::Future<Output = u32> + use<>>, OwnerId) {
    let task = tracked({
        let (limiter, release) = (limiter.clone(), release.clone());
        async move {
            let _token = limiter.acquire().await.unwrap();
            let line = line!() - 1;
            release.wait().await;
            line
        }
    });
    let owner = task.owner();
    let mut task = Polled::new(task);
    assert!(task.is_pending(), "holds a token and waits");
    (task, owner)
}

#[test]
fn a_limiter_lists_each_borrower_with_its_site_and_age_and_counts_anonymous_tokens() {
    let limiter = CapacityLimiter::with_name_and_policy(3, "pool", ownsync::AbandonPolicy::Break);
    let release = Arc::new(Event::new());
    let (mut first, first_id) = limiter_holder(&limiter, &release);
    let (mut second, second_id) = limiter_holder(&limiter, &release);
    let anonymous = limiter.try_acquire().unwrap(); // outside any owner: nobody answers

    let stats = limiter.statistics();
    assert_eq!(stats.permits().to_string(), "0 of 3 available");
    assert_eq!((stats.permits().held(), stats.permits().unlisted()), (3, 1));
    let owners: Vec<_> = stats.borrows().iter().map(|hold| hold.owner()).collect();
    assert_eq!(owners.len(), 2);
    assert!(owners.contains(&Some(first_id)) && owners.contains(&Some(second_id)), "{owners:?}");
    for hold in stats.borrows() {
        assert_eq!(hold.site().unwrap().file(), file!());
        assert!(hold.held_for().is_some(), "aged from the first listing");
    }
    let debug = format!("{limiter:?}");
    assert!(
        debug.starts_with("CapacityLimiter { name: \"pool\", tokens: 0 of 3 available, borrowers: ["),
        "{debug}"
    );
    assert!(debug.contains(&format!("{first_id} at tests/pool_diagnostics.rs:")), "{debug}");
    assert!(debug.contains(&format!("{second_id} at tests/pool_diagnostics.rs:")), "{debug}");
    assert!(debug.contains("anonymous: 1"), "{debug}");

    let first_line =
        stats.borrows().iter().find(|hold| hold.owner() == Some(first_id)).unwrap().site().unwrap().line();
    release.set();
    assert_eq!(first.ready(), first_line, "the site is the acquire's");
    second.ready();
    drop(anonymous);
    let stats = limiter.statistics();
    assert!(stats.borrows().is_empty());
    assert_eq!(stats.permits().to_string(), "3 of 3 available");
}

#[test]
fn a_semaphore_says_k_of_n_and_keeps_its_total_through_add_forget_and_forgotten_permits() {
    let sem = Semaphore::with_name(4, "db");
    let mut permit = sem.try_acquire_many(3).unwrap();
    assert_eq!(
        format!("{sem:?}"),
        "Semaphore { name: \"db\", permits: 1 of 4 available, held: 3, waiters: 0 }"
    );
    sem.add_permits(2);
    assert_eq!(sem.statistics().permits().to_string(), "3 of 6 available");
    assert_eq!(sem.forget_permits(1), 1);
    assert_eq!(sem.statistics().permits().to_string(), "2 of 5 available");
    permit.split(1).unwrap().forget(); // one permit gone for good
    let counts = sem.statistics().permits();
    assert_eq!((counts.available(), counts.total(), counts.held()), (2, 4, 2));
    drop(permit);
    assert_eq!(format!("{sem:?}"), "Semaphore { name: \"db\", permits: 4 of 4 available, waiters: 0 }");
}

/// A forgotten permit that its owner's exit abandoned already (reclaimed into the pool)
/// does not leave the total a second time.
#[test]
fn forgetting_an_abandoned_permit_leaves_the_total_alone() {
    let sem = Arc::new(Semaphore::with_policy(2, ownsync::AbandonPolicy::Reclaim));
    let (tx, rx) = std::sync::mpsc::channel();
    futures::executor::block_on(tracked({
        let sem = sem.clone();
        async move { tx.send(sem.acquire_owned().await.unwrap()).unwrap() }
    }));
    let mut permit = rx.recv().unwrap();
    permit.adopt().unwrap();
    let worker = tracked(pending::<()>());
    permit.hand_to(worker.owner()).unwrap();
    drop(worker); // cancelled while it answers for the permit: reclaimed
    assert_eq!(sem.statistics().permits().to_string(), "2 of 2 available");
    permit.forget();
    assert_eq!(sem.statistics().permits().to_string(), "2 of 2 available");
}

#[cfg(feature = "diagnostics")]
mod snapshot {
    use super::*;
    use ownsync::diagnostics::{PrimitiveSnapshot, Snapshot, Watchdog, WatchdogReport, snapshot};
    use ownsync::tracked_with;
    use std::sync::mpsc;
    use std::time::Duration;

    fn find<'a>(snapshot: &'a Snapshot, name: &str) -> &'a PrimitiveSnapshot {
        snapshot.primitives().iter().find(|primitive| primitive.name() == Some(name)).expect("registered")
    }

    /// A tracked task that waits for a token (never polled again).
    fn limiter_waiter(
        limiter: &CapacityLimiter,
    ) -> (Polled<impl std::future::Future<Output = ()> + use<>>, OwnerId) {
        let task = tracked({
            let limiter = limiter.clone();
            async move { drop(limiter.acquire().await.unwrap()) }
        });
        let owner = task.owner();
        let mut task = Polled::new(task);
        assert!(task.is_pending(), "waits: every token is out");
        (task, owner)
    }

    #[test]
    fn the_snapshot_shows_a_stalled_limiters_holders_and_its_waiter() {
        let limiter =
            CapacityLimiter::with_name_and_policy(2, "stalled-limiter", ownsync::AbandonPolicy::Break);
        let release = Arc::new(Event::new());
        let (_first, first_id) = limiter_holder(&limiter, &release);
        let (_second, second_id) = limiter_holder(&limiter, &release);
        let (_waiter, waiter_id) = limiter_waiter(&limiter);

        let snapshot = snapshot();
        let pool = find(&snapshot, "stalled-limiter");
        let permits = pool.permits().unwrap();
        assert_eq!((permits.available(), permits.total(), permits.unlisted()), (0, 2, 0));
        let holders: Vec<_> = pool.holds().iter().map(|hold| hold.owner().unwrap()).collect();
        assert!(holders.contains(&first_id) && holders.contains(&second_id), "{holders:?}");
        assert_eq!(pool.waits()[0].owner(), Some(waiter_id));
        let text = snapshot.to_string();
        assert!(text.contains("capacity limiter \"stalled-limiter\": 0 of 2 available"), "{text}");
        assert!(text.contains(&format!("held by {first_id}, taken at tests/pool_diagnostics.rs:")), "{text}");
        assert!(text.contains(&format!("waited for by {waiter_id} at tests/pool_diagnostics.rs:")), "{text}");
        release.set();
    }

    #[test]
    fn the_snapshot_lists_handed_over_permits_and_counts_the_rest_as_not_listed() {
        let sem = Arc::new(Semaphore::with_name(3, "stalled-semaphore"));
        let release = Arc::new(Event::new());
        // Taken in the task's own context: registered where only it may look.
        let own = tracked({
            let (sem, release) = (sem.clone(), release.clone());
            async move {
                let _permit = sem.acquire().await.unwrap();
                release.wait().await;
            }
        });
        let mut own = Polled::new(own);
        assert!(own.is_pending());
        // Handed to a new task before it runs (`tracked_with`): listed.
        let permit = sem.clone().try_acquire_many_owned(2).unwrap();
        let handed = tracked_with(permit, |permit| {
            let release = release.clone();
            async move {
                release.wait().await;
                drop(permit);
            }
        });
        let handed_id = handed.owner();
        let mut handed = Polled::new(handed);
        assert!(handed.is_pending());

        let snapshot = snapshot();
        let pool = find(&snapshot, "stalled-semaphore");
        let permits = pool.permits().unwrap();
        assert_eq!((permits.available(), permits.total(), permits.held()), (0, 3, 3));
        assert_eq!(pool.holds().len(), 1, "{:?}", pool.holds());
        assert_eq!((pool.holds()[0].owner(), pool.holds()[0].permits()), (Some(handed_id), 2));
        assert_eq!(pool.holds()[0].site().unwrap().file(), file!());
        assert_eq!(permits.unlisted(), 1, "the task's own permit is counted, not listed");
        let text = snapshot.to_string();
        assert!(text.contains("semaphore \"stalled-semaphore\": 0 of 3 available"), "{text}");
        assert!(
            text.contains(&format!("held by {handed_id} (2 permits), taken at tests/pool_diagnostics.rs:")),
            "{text}"
        );
        assert!(
            text.contains("1 permit(s) held but not listed: anonymous, or held by owners that wait nowhere"),
            "{text}"
        );
        release.set();
        own.ready();
        handed.ready();
    }

    /// The findings of a report (its lines before the snapshot's), one per line.
    fn findings(report: &str) -> Vec<String> {
        report.lines().take_while(|line| !line.starts_with("ownsync: ")).map(str::to_owned).collect()
    }

    /// The first finding, in the reports from `received`, that `matches`; findings about
    /// other tests' primitives (this binary runs them side by side) are skipped. Waits
    /// on the channel, with a deadline only so that a failure does not hang.
    fn finding_where(received: &mpsc::Receiver<WatchdogReport>, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let report = received.recv_timeout(Duration::from_secs(60)).expect("a report within a minute");
            if let Some(found) = findings(&report.to_string()).into_iter().find(|line| matches(line)) {
                return found;
            }
        }
    }

    fn watchdog() -> (ownsync::diagnostics::WatchdogHandle, mpsc::Receiver<WatchdogReport>) {
        let (reports, received) = mpsc::channel();
        let handle = Watchdog::new(Duration::from_millis(1))
            .overdue_after(Duration::ZERO)
            .on_report(move |report| drop(reports.send(report.clone())))
            .start();
        (handle, received)
    }

    /// Two tasks stuck holding the pool's tokens and a third waiting, nothing polled
    /// again: the watchdog reports it, naming the waiter, the holders and `0 of 2`.
    #[test]
    fn the_watchdog_reports_a_stalled_pool_that_nothing_polls() {
        let limiter = CapacityLimiter::with_name_and_policy(2, "watched-pool", ownsync::AbandonPolicy::Break);
        let release = Arc::new(Event::new());
        let (_first, first_id) = limiter_holder(&limiter, &release);
        let (_second, second_id) = limiter_holder(&limiter, &release);
        let (watchdog, received) = watchdog();
        let (_waiter, waiter_id) = limiter_waiter(&limiter);

        let finding = finding_where(&received, |line| line.contains("for capacity limiter \"watched-pool\""));
        assert!(finding.contains(&format!("{waiter_id} has waited")), "{finding}");
        assert!(finding.contains("\"watched-pool\" (0 of 2 available; held by "), "{finding}");
        assert!(finding.contains(&format!("{first_id} at tests/pool_diagnostics.rs:")), "{finding}");
        assert!(finding.contains(&format!("{second_id} at tests/pool_diagnostics.rs:")), "{finding}");
        drop(watchdog);
        release.set();
    }

    /// A wait is reported once, not every period; a new one is reported when it comes.
    /// A callback that panics does not stop the watchdog, and dropping the handle stops
    /// the thread (the callback, with its sender, is dropped with it).
    #[test]
    fn the_watchdog_reports_each_wait_once_survives_a_panicking_callback_and_stops() {
        let sem = Arc::new(Semaphore::with_name(0, "watched-once"));
        let (reports, received) = mpsc::channel::<String>();
        let mut calls = 0;
        let watchdog = Watchdog::new(Duration::from_millis(1))
            .overdue_after(Duration::ZERO)
            .on_report(move |report| {
                let mine: Vec<String> = findings(&report.to_string())
                    .into_iter()
                    .filter(|line| line.contains("\"watched-once\""))
                    .collect();
                if mine.is_empty() {
                    return;
                }
                calls += 1;
                reports.send(mine.join("\n")).unwrap();
                assert!(calls > 1, "the first call panics; the watchdog must go on");
            })
            .start();
        let waiter = |permits: u32| {
            let sem = sem.clone();
            let task = tracked(async move { drop(sem.acquire_many(permits).await.unwrap()) });
            let owner = task.owner();
            let mut task = Polled::new(task);
            assert!(task.is_pending());
            (task, owner)
        };
        let (_first, first_id) = waiter(1);
        let first = received.recv_timeout(Duration::from_secs(60)).expect("the first wait reported");
        assert!(first.contains(&format!("{first_id} has waited")), "{first}");
        let (_second, second_id) = waiter(2);
        let second = received.recv_timeout(Duration::from_secs(60)).expect("the second wait reported");
        assert!(second.contains(&format!("{second_id} has waited")), "{second}");
        assert!(!second.contains(&format!("{first_id} has waited")), "reported once: {second}");
        drop(watchdog);
        assert_eq!(
            received.recv_timeout(Duration::from_secs(60)),
            Err(mpsc::RecvTimeoutError::Disconnected),
            "the thread ended and dropped the callback"
        );
        sem.add_permits(3);
    }

    #[test]
    #[should_panic(expected = "a watchdog's period must not be zero")]
    fn a_zero_period_is_refused() {
        let _ = Watchdog::new(Duration::ZERO);
    }

    /// Two tasks that each hold one mutex and wait for the other's: the watchdog
    /// reports the cycle.
    #[test]
    fn the_watchdog_reports_a_wait_for_cycle() {
        let (accounts, audit) = (
            Arc::new(ownsync::Mutex::with_name((), "cycle-a")),
            Arc::new(ownsync::Mutex::with_name((), "cycle-b")),
        );
        let step = Arc::new(Event::new());
        let task = |first: &Arc<ownsync::Mutex<()>>, second: &Arc<ownsync::Mutex<()>>| {
            let (first, second, step) = (first.clone(), second.clone(), step.clone());
            let task = tracked(async move {
                let _held = first.lock().await.unwrap();
                step.wait().await;
                drop(second.lock().await.unwrap());
            });
            let owner = task.owner();
            let mut task = Polled::new(task);
            assert!(task.is_pending());
            (task, owner)
        };
        let (mut one, one_id) = task(&accounts, &audit);
        let (mut two, two_id) = task(&audit, &accounts);
        let (watchdog, received) = watchdog();
        step.set();
        assert!(one.is_pending() && two.is_pending(), "each waits for the other's mutex");
        let line = finding_where(&received, |line| {
            line.contains("possible deadlock") && line.contains("\"cycle-a\"")
        });
        assert!(line.contains("a cycle of 2 owners"), "{line}");
        assert!(line.contains(&one_id.to_string()) && line.contains(&two_id.to_string()), "{line}");
        drop(watchdog);
    }
}
