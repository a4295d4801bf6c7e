//! Two nodes that list each other as peers keep one session, and neither
//! redials it: this test process is node T, which keeps `corral node` B
//! connected, while B keeps T connected (`--peer`). Whichever side's
//! session survives ractor_cluster's election, each side counts it as its
//! connection to the other — the session a peer opened comes from an
//! ephemeral port, and keying sessions by TCP address made one side redial
//! every few seconds, each try refused as a duplicate.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_cluster::{Node, NodeConfig};
use parking_lot::Mutex;

const COOKIE: &str = "peering-cookie";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_peering_each_other_keep_one_session_and_never_redial() {
    let (pt, pb) = (free_port(), free_port());
    let t_addr = SocketAddr::from(([127, 0, 0, 1], pt));
    let b_addr = SocketAddr::from(([127, 0, 0, 1], pb));
    let t = Node::start(NodeConfig::new("t", "127.0.0.1", pt, COOKIE))
        .await
        .expect("node T");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["node", "--no-pool", "--name", "b", "--cookie", COOKIE])
        .args(["--port", &pb.to_string(), "--peer", &t_addr.to_string()])
        .env("RUST_LOG", "corral_cluster=debug,warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corral node");
    let stderr = child.stderr.take().unwrap();
    let _b = Killed(child);
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().push(line);
        }
    });
    t.connect(b_addr);

    // Settled: each side sees the other connected, over one session, and
    // has for 500 ms (when both dial at once, ractor_cluster may make both
    // sessions ready and then close the one its election drops; that takes
    // milliseconds, and is not a redial).
    let until = Instant::now() + Duration::from_secs(20);
    let mut settled_since: Option<(Instant, usize)> = None;
    let mark = loop {
        {
            let lines = log.lock();
            let closed = lines
                .iter()
                .filter(|l| l.contains("node session closed") && !l.contains("before it was ready"))
                .count();
            let b_sessions = count(&lines, "node session ready").saturating_sub(closed);
            let connected = count(&lines, "peer connected");
            if t.is_connected(b_addr)
                && t.sessions().len() == 1
                && connected == count(&lines, "peer lost") + 1
                && b_sessions == 1
            {
                match settled_since {
                    Some((since, n)) if n == lines.len() => {
                        if since.elapsed() >= Duration::from_millis(500) {
                            break lines.len();
                        }
                    }
                    _ => settled_since = Some((Instant::now(), lines.len())),
                }
            } else {
                settled_since = None;
            }
        }
        assert!(
            Instant::now() < until,
            "not connected both ways within 20 s: T sees {:?}; B's log:\n{}",
            t.sessions(),
            log.lock().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // For 10 s (two of the keeper's longest backoffs): the session stays,
    // and nobody dials.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        assert!(t.is_connected(b_addr), "T lost B: {:?}", t.sessions());
        assert_eq!(t.sessions().len(), 1, "{:?}", t.sessions());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = log.lock();
    let after = &lines[mark..];
    for what in [
        "dialling peer",
        "node session closed",
        "did not authenticate",
        "peer lost",
    ] {
        assert_eq!(
            count(after, what),
            0,
            "B's log after both were connected has {what:?}:\n{}",
            after.join("\n")
        );
    }
    assert!(t.is_connected(b_addr));
}
