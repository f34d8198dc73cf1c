//! A long run against a real etcd with holder processes killed in it, then its history
//! replayed from etcd's own event log: every grant was legitimate at its revision, never
//! more than N tokens were held at once, no token was granted twice, and nothing was
//! left behind. `OWNSYNC_ETCD_HISTORY_GRANTS` sets how many grants (default 1,000).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{endpoint, spawn_holder, unique};
use etcd_client::{EventType, GetOptions, WatchOptions};
use ownsync::AbandonPolicy;
use ownsync_etcd::Session;

const TOTAL: usize = 3;

/// The holder-process entry point the spawned processes run (see `common`).
#[test]
fn holder_process() {
    let Ok(spec) = std::env::var("OWNSYNC_ETCD_CHILD") else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (name, total, ttl, cycles) = (
        parts[0].to_owned(),
        parts[1].parse().unwrap(),
        parts[3].parse().unwrap(),
        parts[4].parse::<u64>().unwrap(),
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let endpoint = std::env::var("OWNSYNC_ETCD").unwrap();
        let session = Session::connect(&[endpoint.as_str()], Duration::from_secs(ttl)).await.unwrap();
        let limiter = session.limiter(&name, total, AbandonPolicy::Reclaim);
        for _ in 0..cycles {
            let token = limiter.acquire().await.unwrap();
            println!("GRANT {} {}", token.fencing().key(), token.fence());
            token.release().await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_killed_holders_replays_to_a_history_with_at_most_n_held_and_no_token_twice() {
    let Some(endpoint) =
        endpoint("a_run_with_killed_holders_replays_to_a_history_with_at_most_n_held_and_no_token_twice")
    else {
        return;
    };
    let wanted: u64 =
        std::env::var("OWNSYNC_ETCD_HISTORY_GRANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let name = unique("history");
    let mut client = etcd_client::Client::connect([endpoint.as_str()], None).await.unwrap();
    let start = client.get("ownsync/", Some(GetOptions::new().with_keys_only().with_limit(1))).await.unwrap();
    let start = start.header().unwrap().revision();

    let granted = Arc::new(AtomicU64::new(0));
    let grants = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let session = Session::connect(&[endpoint.as_str()], Duration::from_secs(10)).await.unwrap();
        for _ in 0..3 {
            let (session, name, granted, grants) =
                (session.clone(), name.clone(), granted.clone(), grants.clone());
            tasks.push(tokio::spawn(async move {
                let limiter = session.limiter(&name, TOTAL, AbandonPolicy::Reclaim);
                while granted.load(Ordering::SeqCst) < wanted {
                    let token = limiter.acquire().await.unwrap();
                    let fencing = token.fencing();
                    grants.lock().unwrap().push((fencing.key().to_owned(), fencing.value()));
                    granted.fetch_add(1, Ordering::SeqCst);
                    token.release().await.unwrap();
                }
            }));
        }
    }
    // The faults: holder processes killed (-9) in the middle of their loops, one after
    // the other, while the tasks above run.
    let mut killed = 0;
    let mut child_grants = Vec::new();
    for _ in 0..3 {
        if granted.load(Ordering::SeqCst) >= wanted {
            break;
        }
        let holder = spawn_holder(&endpoint, &name, TOTAL, "reclaim", 2, u64::MAX / 2);
        for _ in 0..20 {
            child_grants.push(holder.expect_line("GRANT", Duration::from_secs(60)));
        }
        holder.signal("-KILL");
        killed += 1;
        child_grants.extend(holder.lines_until_exit("GRANT", Duration::from_secs(60)));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(600), task).await.expect("the run ended").unwrap();
    }
    // A killed holder's key is settled by whoever looks next.
    let session = Session::connect(&[endpoint.as_str()], Duration::from_secs(10)).await.unwrap();
    let limiter = session.limiter(&name, TOTAL, AbandonPolicy::Reclaim);
    assert!(!limiter.is_broken().await.unwrap());
    drop(limiter);
    session.close().await.unwrap();
    let end = client
        .put(format!("ownsync/limiter/{name}/end"), "", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();

    // The replay.
    let mut watch = client
        .watch(
            format!("ownsync/limiter/{name}/"),
            Some(WatchOptions::new().with_prefix().with_start_revision(start + 1)),
        )
        .await
        .unwrap();
    let mut queue: BTreeMap<i64, String> = BTreeMap::new();
    let mut created: HashMap<String, i64> = HashMap::new();
    let mut deleted: HashMap<String, i64> = HashMap::new();
    let mut rank_at_grant: HashMap<(String, i64), usize> = HashMap::new();
    let mut all_grants: Vec<(String, i64)> = grants.lock().unwrap().clone();
    for line in &child_grants {
        let mut parts = line.split_whitespace().skip(1);
        all_grants.push((parts.next().unwrap().to_owned(), parts.next().unwrap().parse().unwrap()));
    }
    let by_fence: HashMap<i64, Vec<String>> =
        all_grants.iter().fold(HashMap::new(), |mut map, (key, fence)| {
            map.entry(*fence).or_default().push(key.clone());
            map
        });
    let mut last = start;
    'replay: while let Some(response) = watch.message().await.unwrap() {
        for event in response.events() {
            let kv = event.kv().unwrap();
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let revision = kv.mod_revision();
            if revision != last {
                // Everything of revision `last` is applied: check the grants made at it.
                check_ranks(&by_fence, last, &queue, &created, &mut rank_at_grant);
                last = revision;
            }
            if !key.contains("/q/") {
                if revision >= end {
                    break 'replay;
                }
                continue;
            }
            match event.event_type() {
                EventType::Put if kv.create_revision() == kv.mod_revision() => {
                    queue.insert(kv.create_revision(), key.clone());
                    created.insert(key, kv.create_revision());
                }
                EventType::Put => {}
                EventType::Delete => {
                    let create = created[&key];
                    queue.remove(&create);
                    assert!(deleted.insert(key, revision).is_none(), "a key deleted twice");
                }
            }
        }
    }
    check_ranks(&by_fence, last, &queue, &created, &mut rank_at_grant);

    // Every grant was the grant of a key in the first N of the queue at its revision.
    for grant in &all_grants {
        let rank =
            rank_at_grant.get(grant).unwrap_or_else(|| panic!("grant {grant:?} not found in the history"));
        assert!(*rank < TOTAL, "grant {grant:?} at rank {rank}");
    }
    // No token granted twice: no key, no fence, twice.
    let keys: HashSet<&String> = all_grants.iter().map(|(key, _)| key).collect();
    let fences: HashSet<i64> = all_grants.iter().map(|(_, fence)| *fence).collect();
    assert_eq!(keys.len(), all_grants.len(), "a key granted twice");
    assert_eq!(fences.len(), all_grants.len(), "a fence given twice");
    // Never more than N held at any revision: each grant holds from its fence to its
    // key's deletion.
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (key, fence) in &all_grants {
        edges.push((*fence, 1));
        edges.push((*deleted.get(key).unwrap_or(&i64::MAX), -1));
    }
    edges.sort();
    let (mut held, mut most) = (0, 0);
    for (_, change) in edges {
        held += change;
        most = most.max(held);
    }
    assert!(most as usize <= TOTAL, "{most} held at once");
    // Nothing left behind: every key created was deleted (the killed holders' too).
    assert!(queue.is_empty(), "keys left: {:?}", queue.values().collect::<Vec<_>>());
    eprintln!(
        "history: {} grants ({} by killed holder processes, {killed} killed), {} keys, \
         at most {most} held at once, revisions {start}..{end}",
        all_grants.len(),
        child_grants.len(),
        created.len()
    );
}

/// Records, for each grant whose fence is `revision`, its key's rank in the queue then.
fn check_ranks(
    by_fence: &HashMap<i64, Vec<String>>,
    revision: i64,
    queue: &BTreeMap<i64, String>,
    created: &HashMap<String, i64>,
    rank_at_grant: &mut HashMap<(String, i64), usize>,
) {
    let Some(keys) = by_fence.get(&revision) else { return };
    for key in keys {
        let Some(create) = created.get(key) else { continue };
        let rank = queue.range(..create).count();
        assert!(queue.contains_key(create), "granted key {key} not in the queue at {revision}");
        rank_at_grant.insert((key.clone(), revision), rank);
    }
}
