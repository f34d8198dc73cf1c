//! etcd itself paused (SIGSTOP) for longer than the sessions' time to live: every lease
//! expires when it resumes, though every holder lives. The documented outcome under
//! `Break`: the holder's session is lost and its fenced writes are refused, and the
//! limiter is broken for the fleet, naming the holder, with the reason "lost its lease
//! (holder or engine unreachable)". This test starts its own etcd member (it pauses it),
//! so it needs the `etcd` binary; `OWNSYNC_ETCD` only says that etcd tests are wanted.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::endpoint;
use ownsync::AbandonReason;
use ownsync_etcd::{FleetError, Session};

struct Member {
    child: Child,
    data: std::path::PathBuf,
    endpoint: String,
}

impl Member {
    fn start() -> Member {
        let port = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (client, peer) = (port(), port());
        let data = std::env::temp_dir().join(format!("ownsync-etcd-stall-{}-{client}", std::process::id()));
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "stall", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("stall={peer_url}"), "--initial-cluster-state", "new"])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs the etcd binary on PATH");
        Member { child, data, endpoint }
    }

    fn signal(&self, signal: &str) {
        assert!(
            Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap().success()
        );
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn connect(endpoint: &str, ttl: u64) -> Session {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Session::connect(&[endpoint], Duration::from_secs(ttl)).await {
            Ok(session) => return session,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the etcd member did not come up: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_paused_past_the_ttl_breaks_a_break_limiter_though_its_holder_lives() {
    if endpoint("an_etcd_paused_past_the_ttl_breaks_a_break_limiter_though_its_holder_lives").is_none() {
        return;
    }
    let member = Member::start();
    let ttl = 2;
    let holder = connect(&member.endpoint, ttl).await;
    let mutex = holder.mutex("stalled");
    let token = mutex.acquire().await.unwrap();
    let fence = token.fencing();
    // The fault: etcd paused for twice the time to live. (This sleep is the fault's
    // length, not a wait for an outcome.)
    member.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(2 * ttl)).await;
    member.signal("-CONT");
    // The holder lives, but its lease expired: its session says so ...
    tokio::time::timeout(Duration::from_secs(30), holder.lost()).await.expect("the holder's session is lost");
    // ... and its fenced write is refused.
    let write = fence.txn([etcd_client::TxnOp::put("stalled/resource", "late", None)]);
    let mut client = etcd_client::Client::connect([member.endpoint.as_str()], None).await.unwrap();
    assert!(!client.txn(write).await.unwrap().succeeded(), "a write under a lost lease committed");
    // The fleet: the next process to look finds the limiter broken, naming the holder.
    let other = connect(&member.endpoint, 10).await;
    let Err(FleetError::Broken(err)) = other.mutex("stalled").acquire().await else {
        panic!("expected Broken")
    };
    assert_eq!(err.reason(), AbandonReason::LeaseExpired);
    assert_eq!(err.lease(), holder.lease());
    drop(token);
}
