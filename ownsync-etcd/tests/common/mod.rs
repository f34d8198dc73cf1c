//! What the tests against a real etcd share: the endpoint (or the reason to skip), the
//! holder processes they spawn, and bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The etcd endpoint the tests use (`OWNSYNC_ETCD`, e.g. `http://127.0.0.1:2379`). Without
/// it the test says it skipped and passes, unless `OWNSYNC_ETCD_REQUIRED=1` (CI), where
/// it fails.
pub fn endpoint(test: &str) -> Option<String> {
    match std::env::var("OWNSYNC_ETCD") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            assert!(
                std::env::var("OWNSYNC_ETCD_REQUIRED").as_deref() != Ok("1"),
                "{test}: OWNSYNC_ETCD is not set but OWNSYNC_ETCD_REQUIRED=1"
            );
            // Straight to the process's stderr: the test harness would hide an `eprintln!`
            // of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "{test}: SKIPPED (set OWNSYNC_ETCD to an etcd endpoint to run it)"
            );
            None
        }
    }
}

/// A limiter name no other test or run uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("test-{name}-{}-{nanos}", std::process::id())
}

/// What a holder process reports on its standard output.
pub struct Holder {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

/// Spawns this test binary again as a holder process (the test `holder_process` with
/// `OWNSYNC_ETCD_CHILD` set): it connects with `ttl`, acquires one token of
/// `limiter` (`total`, `policy` "break" or "reclaim"), prints `HOLDING fence=F lease=L`,
/// then answers `WRITE` on its standard input with a fenced write and prints
/// `WRITE committed` or `WRITE refused`. With `cycles` > 0 it instead acquires and
/// releases that many times, printing `GRANT key fence` for each.
pub fn spawn_holder(
    endpoint: &str,
    limiter: &str,
    total: usize,
    policy: &str,
    ttl_secs: u64,
    cycles: u64,
) -> Holder {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["holder_process", "--exact", "--nocapture", "--test-threads=1"])
        .env("OWNSYNC_ETCD", endpoint)
        .env("OWNSYNC_ETCD_CHILD", format!("{limiter}|{total}|{policy}|{ttl_secs}|{cycles}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the holder process");
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let stdin = child.stdin.take();
    Holder { child, stdin, lines }
}

impl Holder {
    /// The next line with `prefix` (from it on), waiting at most `cap`.
    pub fn expect_line(&self, prefix: &str, cap: Duration) -> String {
        let deadline = Instant::now() + cap;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The test harness may print its `test holder_process ... ` first.
                Ok(line) if line.contains(prefix) => return line[line.find(prefix).unwrap()..].to_owned(),
                Ok(_) => {}
                Err(err) => panic!("no line starting with {prefix:?} from the holder within {cap:?}: {err}"),
            }
        }
    }

    /// Every line starting with `prefix` until the process's output ends.
    pub fn lines_until_exit(&self, prefix: &str, cap: Duration) -> Vec<String> {
        let deadline = Instant::now() + cap;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(prefix) => out.push(line[line.find(prefix).unwrap()..].to_owned()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return out,
                Err(err) => panic!("the holder's output did not end within {cap:?}: {err}"),
            }
        }
    }

    /// Lines seen so far starting with `prefix`, without waiting.
    pub fn drain(&self, prefix: &str) -> Vec<String> {
        self.lines.try_iter().filter_map(|line| line.find(prefix).map(|at| line[at..].to_owned())).collect()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // SIGCONT first, in case a test stopped it and failed before resuming it.
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `field=value` out of a `HOLDING ...` line.
pub fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// Waits (polling etcd every 20 ms, at most `cap`) until `check` says yes.
pub async fn eventually<F, Fut>(cap: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + cap;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {cap:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
