//! The fleet limiter against a real etcd (`OWNSYNC_ETCD`): grants, FIFO order, the
//! limit, cancel safety, and the faults: a holder killed, a holder paused past its
//! lease, a token leaked by a tracked task.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{endpoint, eventually, field, spawn_holder, unique};
use ownsync::{AbandonPolicy, AbandonReason};
use ownsync_etcd::{FleetError, Session};

const CAP: Duration = Duration::from_secs(30);

async fn session(endpoint: &str, ttl_secs: u64) -> Session {
    Session::connect(&[endpoint], Duration::from_secs(ttl_secs)).await.expect("connect to etcd")
}

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CAP, future).await.unwrap_or_else(|_| panic!("{what}: not within {CAP:?}"))
}

/// Not a test of its own: the holder process that other tests spawn (see
/// `common::spawn_holder`). Without `OWNSYNC_ETCD_CHILD` it does nothing.
#[test]
fn holder_process() {
    let Ok(spec) = std::env::var("OWNSYNC_ETCD_CHILD") else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (name, total, policy, ttl, cycles) = (
        parts[0],
        parts[1].parse().unwrap(),
        parts[2],
        parts[3].parse().unwrap(),
        parts[4].parse::<u64>().unwrap(),
    );
    let policy = if policy == "reclaim" { AbandonPolicy::Reclaim } else { AbandonPolicy::Break };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint = std::env::var("OWNSYNC_ETCD").unwrap();
        let session = session(&endpoint, ttl).await;
        let limiter = session.limiter(name, total, policy);
        if cycles > 0 {
            for _ in 0..cycles {
                let token = limiter.acquire().await.unwrap();
                println!("GRANT {} {}", token.fencing().key(), token.fence());
                token.release().await.unwrap();
            }
            return;
        }
        let token = limiter.acquire().await.unwrap();
        println!("HOLDING fence={} lease={:x} pid={}", token.fence(), session.lease(), std::process::id());
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap() > 0 {
            if line.trim() == "WRITE" {
                let write = token.fenced([etcd_client::TxnOp::put(format!("{name}/resource"), "late", None)]);
                let committed = session.client().txn(write).await.unwrap().succeeded();
                println!("WRITE {}", if committed { "committed" } else { "refused" });
            }
            line.clear();
        }
        std::mem::forget(token);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncontended_acquire_is_granted_and_each_grant_fences_higher() {
    let Some(endpoint) = endpoint("an_uncontended_acquire_is_granted_and_each_grant_fences_higher") else {
        return;
    };
    let session = session(&endpoint, 5).await;
    let mutex = session.mutex(&unique("uncontended"));
    let first = mutex.acquire().await.unwrap();
    let fence = first.fence();
    assert!(fence > 0);
    assert_eq!(mutex.statistics().await.unwrap().held(), 1);
    first.release().await.unwrap();
    assert_eq!(mutex.statistics().await.unwrap().held(), 0);
    let second = mutex.acquire().await.unwrap();
    assert!(second.fence() > fence);
    drop(second); // released in the background
    eventually(CAP, "a dropped token is released", || async {
        mutex.statistics().await.unwrap().held() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_acquire_takes_a_free_token_and_otherwise_would_block_leaving_no_request() {
    let Some(endpoint) =
        endpoint("try_acquire_takes_a_free_token_and_otherwise_would_block_leaving_no_request")
    else {
        return;
    };
    let session = session(&endpoint, 5).await;
    let limiter = session.limiter(&unique("try"), 2, AbandonPolicy::Break);
    let a = limiter.try_acquire().await.unwrap();
    let b = limiter.try_acquire().await.unwrap();
    assert!(matches!(limiter.try_acquire().await, Err(FleetError::WouldBlock)));
    let stats = limiter.statistics().await.unwrap();
    assert_eq!((stats.held(), stats.waiting()), (2, 0));
    a.release().await.unwrap();
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_granted_first_come_first_served_across_sessions() {
    let Some(endpoint) = endpoint("waiters_are_granted_first_come_first_served_across_sessions") else {
        return;
    };
    let name = unique("fifo");
    let holder_session = session(&endpoint, 5).await;
    let mutex = holder_session.mutex(&name);
    let held = mutex.acquire().await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for index in 0..4 {
        let session = session(&endpoint, 5).await;
        let order = order.clone();
        let name = name.clone();
        waiters.push(tokio::spawn(async move {
            let mutex = session.mutex(&name);
            let token = mutex.acquire().await.unwrap();
            order.lock().unwrap().push(index);
            token.release().await.unwrap();
            mutex.statistics().await.unwrap().needless_wakeups()
        }));
        // The next one queues only once this one has.
        eventually(CAP, "the waiter queued", || async {
            mutex.statistics().await.unwrap().waiting() == index + 1
        })
        .await;
    }
    held.release().await.unwrap();
    let mut wakeups = 0;
    for waiter in waiters {
        wakeups += bounded("a waiter", waiter).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    assert_eq!(wakeups, 0, "each waiter is woken only when it is let in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_of_three_never_grants_more_than_three_at_once() {
    let Some(endpoint) = endpoint("a_limiter_of_three_never_grants_more_than_three_at_once") else { return };
    let name = unique("limit");
    let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let session = session(&endpoint, 5).await;
        for _ in 0..3 {
            let (session, name, inside, most) = (session.clone(), name.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let limiter = session.limiter(&name, 3, AbandonPolicy::Break);
                for _ in 0..10 {
                    let token = limiter.acquire().await.unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Held across a round trip to etcd, so that holds overlap.
                    limiter.statistics().await.unwrap();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    token.release().await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        bounded("a task", task).await.unwrap();
    }
    // Whether all three were ever held at once depends on timing: only the bound is
    // asserted (the history test checks it against etcd's own log).
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} held at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_acquire_leaves_its_place_and_the_next_waiter_is_served() {
    let Some(endpoint) = endpoint("a_cancelled_acquire_leaves_its_place_and_the_next_waiter_is_served")
    else {
        return;
    };
    let session = session(&endpoint, 5).await;
    let mutex = session.mutex(&unique("cancel"));
    let held = mutex.acquire().await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(300), mutex.acquire()).await;
    assert!(cancelled.is_err(), "it waited");
    eventually(CAP, "the cancelled request is removed", || async {
        mutex.statistics().await.unwrap().waiting() == 0
    })
    .await;
    held.release().await.unwrap();
    bounded("the next acquire", mutex.acquire()).await.unwrap().release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_breaks_the_limiter_for_its_waiters_within_one_and_a_half_ttl_naming_it() {
    let Some(endpoint) =
        endpoint("a_holder_killed_breaks_the_limiter_for_its_waiters_within_one_and_a_half_ttl_naming_it")
    else {
        return;
    };
    let name = unique("kill");
    let ttl = 4;
    let holder = spawn_holder(&endpoint, &name, 1, "break", ttl, 0);
    let holding = holder.expect_line("HOLDING", CAP);
    let session = session(&endpoint, 10).await;
    let mutex = session.mutex(&name);
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let session = session.clone();
        let name = name.clone();
        waiters.push(tokio::spawn(async move {
            let result = session.mutex(&name).acquire().await.map(|token| token.fence());
            (result, Instant::now())
        }));
    }
    eventually(CAP, "both waiters queued", || async { mutex.statistics().await.unwrap().waiting() == 2 })
        .await;
    holder.signal("-KILL");
    let killed_at = Instant::now();
    let limit = Duration::from_secs(ttl).mul_f64(1.5);
    for waiter in waiters {
        let (result, told_at) = bounded("a waiter", waiter).await.unwrap();
        let Err(FleetError::Broken(err)) = result else { panic!("expected Broken, got {result:?}") };
        let detection = told_at - killed_at;
        eprintln!("kill -9, ttl {ttl} s: waiter told after {detection:?}");
        assert!(detection <= limit, "told after {detection:?}, more than 1.5 x TTL");
        assert_eq!(err.reason(), AbandonReason::LeaseExpired);
        assert_eq!(format!("{:x}", err.lease()), field(&holding, "lease"));
        assert!(err.process().starts_with(&format!("pid {} on ", field(&holding, "pid"))));
        assert!(err.site().unwrap().contains("fleet.rs"), "{err}");
        assert!(err.to_string().contains("lost its lease (holder or engine unreachable) while holding it"));
    }
    // Later acquires too, until repaired.
    assert!(matches!(mutex.acquire().await, Err(FleetError::Broken(_))));
    assert!(mutex.is_broken().await.unwrap());
    assert!(mutex.try_repair().await.unwrap());
    mutex.acquire().await.unwrap().release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_reclaim_a_killed_holders_token_returns_to_the_waiters() {
    let Some(endpoint) = endpoint("under_reclaim_a_killed_holders_token_returns_to_the_waiters") else {
        return;
    };
    let name = unique("reclaim");
    let ttl = 3;
    let holder = spawn_holder(&endpoint, &name, 1, "reclaim", ttl, 0);
    holder.expect_line("HOLDING", CAP);
    let session = session(&endpoint, 10).await;
    let limiter = session.limiter(&name, 1, AbandonPolicy::Reclaim);
    let waiting = limiter.acquire();
    holder.signal("-KILL");
    let token = bounded("the waiter", waiting).await.unwrap();
    assert!(!limiter.is_broken().await.unwrap());
    assert_eq!(limiter.statistics().await.unwrap().settled_holders(), 1);
    token.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_past_its_ttl_loses_the_token_and_its_late_fenced_write_is_refused() {
    let Some(endpoint) =
        endpoint("a_holder_paused_past_its_ttl_loses_the_token_and_its_late_fenced_write_is_refused")
    else {
        return;
    };
    let name = unique("pause");
    let ttl = 2;
    let mut holder = spawn_holder(&endpoint, &name, 1, "reclaim", ttl, 0);
    let holding = holder.expect_line("HOLDING", CAP);
    // While it holds, its fenced write commits.
    holder.send("WRITE");
    assert_eq!(holder.expect_line("WRITE", CAP), "WRITE committed");
    let session = session(&endpoint, 10).await;
    let limiter = session.limiter(&name, 1, AbandonPolicy::Reclaim);
    holder.signal("-STOP");
    let token = bounded("the waiter", limiter.acquire()).await.unwrap();
    assert!(token.fence() > field(&holding, "fence").parse::<i64>().unwrap());
    // The paused holder wakes up still believing it holds the token, and writes.
    holder.send("WRITE");
    holder.signal("-CONT");
    assert_eq!(holder.expect_line("WRITE", CAP), "WRITE refused");
    // The new holder's write commits.
    let write = token.fenced([etcd_client::TxnOp::put(format!("{name}/resource"), "current", None)]);
    assert!(session.client().txn(write).await.unwrap().succeeded());
    token.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_leaked_by_a_tracked_task_breaks_the_limiter_without_any_later_acquire() {
    let Some(endpoint) =
        endpoint("a_token_leaked_by_a_tracked_task_breaks_the_limiter_without_any_later_acquire")
    else {
        return;
    };
    let name = unique("leak");
    let session = session(&endpoint, 10).await;
    let limiter = Arc::new(session.limiter(&name, 1, AbandonPolicy::Break));
    let other = session.limiter(&name, 1, AbandonPolicy::Break);
    let task = ownsync::tracked({
        let limiter = limiter.clone();
        async move {
            let token = limiter.acquire().await.unwrap();
            let fence = token.fence();
            std::mem::forget(token);
            fence
        }
    });
    let task_id = task.owner();
    let _fence = bounded("the leaking task", tokio::spawn(task)).await.unwrap();
    // Nobody acquires: the break is written by the exit itself.
    eventually(CAP, "the limiter broke", || async { other.statistics().await.unwrap().is_broken() }).await;
    let Err(FleetError::Broken(err)) = other.acquire().await else { panic!("expected Broken") };
    assert_eq!(err.reason(), AbandonReason::Exited);
    assert_eq!(err.task(), Some(task_id.to_string().as_str()));
    assert_eq!(err.lease(), session.lease());
    assert!(err.to_string().contains(&format!("{task_id} exited while holding it (taken at ")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_released_by_a_tracked_task_breaks_nothing() {
    let Some(endpoint) = endpoint("a_token_released_by_a_tracked_task_breaks_nothing") else { return };
    let session = session(&endpoint, 10).await;
    let limiter = Arc::new(session.limiter(&unique("no-leak"), 1, AbandonPolicy::Break));
    let task = ownsync::tracked({
        let limiter = limiter.clone();
        async move {
            let dropped = limiter.acquire().await.unwrap();
            drop(dropped);
            limiter.acquire().await.unwrap().release().await.unwrap();
        }
    });
    bounded("the task", tokio::spawn(task)).await.unwrap();
    bounded("a later acquire", limiter.acquire()).await.unwrap().release().await.unwrap();
    assert!(!limiter.is_broken().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_behind_a_waiter_that_was_granted_is_woken_by_the_next_release() {
    let Some(endpoint) = endpoint("a_waiter_behind_a_waiter_that_was_granted_is_woken_by_the_next_release")
    else {
        return;
    };
    // A long time to live: the limiter looks again once per TTL in case a watch was
    // lost, which must not be what serves the second waiter.
    let session = session(&endpoint, 120).await;
    let limiter = session.limiter(&unique("chain"), 2, AbandonPolicy::Break);
    let first_holder = limiter.acquire().await.unwrap();
    let second_holder = limiter.acquire().await.unwrap();
    let (first_waiter, second_waiter) = (limiter.acquire(), limiter.acquire());
    tokio::pin!(first_waiter, second_waiter);
    // Queue both, in order.
    let limiter = &limiter;
    let queued = move |count| async move { limiter.statistics().await.unwrap().waiting() == count };
    tokio::select! { _ = &mut first_waiter => panic!("granted early"), () = eventually(CAP, "queued", || queued(1)) => {} }
    tokio::select! { _ = &mut second_waiter => panic!("granted early"), () = eventually(CAP, "queued", || queued(2)) => {} }
    first_holder.release().await.unwrap();
    let _first = tokio::select! {
        token = &mut first_waiter => token.unwrap(),
        _ = &mut second_waiter => panic!("the second waiter went first"),
    };
    // The second waiter now waits behind two holders; the next release lets it in.
    second_holder.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(20), second_waiter).await;
    second.expect("the second waiter was not woken by the release").unwrap().release().await.unwrap();
}
