//! The cluster across processes: `corral-bench node` processes on loopback
//! host synthetic pools, and this test process is the node that routes (the
//! process-group registry is global to a process, so every node is a
//! process of its own). Each test uses a model name of its own, so its
//! group is its own even though the tests share this process.
//!
//! - kill a node mid-run: every request is answered exactly once, the split
//!   follows the pools' speed, and the node restarted on its port rejoins;
//! - freeze a node (SIGSTOP): out of routing within the stated bound,
//!   requests keep being answered, back after SIGCONT;
//! - a wrong cookie gets nothing through;
//! - requests just under and just over the wire limit: the one under is
//!   served, the one over is `TooLarge` without being sent anywhere,
//!   and no node loses its session;
//! - nodes talk over mutual TLS with certificates made at test time, and a
//!   node without TLS gets nothing through.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corral_cluster::{group_name, ClusterConfig, ClusterHandle, Node, NodeConfig, TlsConfig};
use corral_core::synthetic::Item;
use corral_core::{Call, PoolError, Refusal};
use ractor::ActorId;

type Handle = ClusterHandle<Item, u64>;

const COOKIE: &str = "cluster-test-cookie";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A `corral-bench node` child process, killed when dropped.
struct NodeProc {
    child: Child,
}

impl NodeProc {
    /// Starts a node hosting a synthetic pool of `per_item_ms` per input and
    /// waits for its ready line.
    fn start(name: &str, port: u16, model: &str, per_item_ms: f64, cookie: &str) -> Self {
        Self::start_with(name, port, model, per_item_ms, cookie, &[])
    }

    /// As `start`, with more arguments.
    fn start_with(
        name: &str,
        port: u16,
        model: &str,
        per_item_ms: f64,
        cookie: &str,
        extra: &[&str],
    ) -> Self {
        let ms = per_item_ms.to_string();
        let mut args = extra.to_vec();
        args.extend(["--synthetic-ms", &ms, "--workers", "2"]);
        Self::spawn(name, port, model, cookie, &args)
    }

    /// A node with `args` after the common ones; waits for its ready line.
    fn spawn(name: &str, port: u16, model: &str, cookie: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral-bench"))
            .arg("node")
            .args(args)
            .args(["--name", name, "--port", &port.to_string()])
            .args(["--cookie", cookie, "--model-name", model])
            .args(["--threads", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn corral-bench node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(" ready on ") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("node {name} did not report ready"));
        Self { child }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

/// Serialises the tests of this file (see the module docs).
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

async fn router_node(cookie: &str) -> Node {
    Node::start(NodeConfig::new(
        format!("router-{}", free_port()),
        "127.0.0.1",
        free_port(),
        cookie,
    ))
    .await
    .expect("router node")
}

fn in_routing(h: &Handle) -> Vec<ActorId> {
    h.members()
        .into_iter()
        .filter(|m| m.in_routing)
        .map(|m| m.id)
        .collect()
}

async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` requests from `callers` closed-loop callers; each task returns the
/// ids it got back (checked against what it sent).
fn load(h: &Handle, callers: u64, n: u64) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    (0..callers)
        .map(|c| {
            let h = h.clone();
            tokio::spawn(async move {
                let mut got = vec![];
                let mut id = c;
                while id < n {
                    match h.call(Item::new(id)).await.map_err(PoolError::from) {
                        Ok(out) => {
                            assert_eq!(out, id, "an answer for another request");
                            got.push(out);
                        }
                        Err(e) => panic!("request {id} failed: {e}"),
                    }
                    id += callers;
                }
                got
            })
        })
        .collect()
}

async fn answered_once(tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>, n: u64) {
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("caller panicked") {
            assert!(seen.insert(id), "request {id} answered twice");
        }
    }
    assert_eq!(seen.len() as u64, n, "every request answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_the_split_follows_speed_and_it_rejoins() {
    let _serial = one_at_a_time().await;
    let model = "kill";
    let (pa, pb) = (free_port(), free_port());
    let mut a = NodeProc::start("a", pa, model, 1.0, COOKIE);
    let _b = NodeProc::start("b", pb, model, 10.0, COOKIE);
    let c = router_node(COOKIE).await;
    let h = Handle::spawn(ClusterConfig::new(group_name("synthetic", model)))
        .await
        .unwrap();
    c.connect(addr(pa));
    h.wait_members(1, Duration::from_secs(10))
        .await
        .expect("A found");
    let id_a = in_routing(&h)[0];
    c.connect(addr(pb));
    h.wait_members(2, Duration::from_secs(10))
        .await
        .expect("B found");

    const N: u64 = 1000;
    let tasks = load(&h, 16, N);
    wait_until(Duration::from_secs(30), "300 answered", || {
        h.stats().answered >= 300
    })
    .await;
    let before = h.members();
    let answered = |id: ActorId| {
        before
            .iter()
            .find(|m| m.id == id)
            .map_or(0, |m| m.counts.answered)
    };
    let on_a = answered(id_a);
    let on_b: u64 = before.iter().map(|m| m.counts.answered).sum::<u64>() - on_a;
    assert!(
        on_a > 3 * on_b && on_b > 0,
        "A is 10× faster and should take most, B some: A {on_a}, B {on_b}"
    );
    a.kill();
    answered_once(tasks, N).await;
    let s = h.stats();
    assert_eq!(s.answered, N);
    assert_eq!(s.worker_lost, 0, "{s:?}");
    assert!(!in_routing(&h).contains(&id_a), "A left routing");

    // A comes back on its port; the router node reconnects by itself.
    let _a2 = NodeProc::start("a", pa, model, 1.0, COOKIE);
    h.wait_members(2, Duration::from_secs(15))
        .await
        .expect("restarted A rejoins routing");
    let back: Vec<ActorId> = in_routing(&h);
    let tasks = load(&h, 16, 200);
    answered_once(tasks, 200).await;
    let new_a = h.members().into_iter().find(|m| {
        back.contains(&m.id) && m.id != id_a && m.counts.answered > 0 && {
            m.load
                .is_some_and(|l| l.per_request < Duration::from_millis(5))
        }
    });
    assert!(
        new_a.is_some(),
        "the restarted A serves again: {:?}",
        h.members()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_leaves_routing_within_the_bound_and_comes_back() {
    let _serial = one_at_a_time().await;
    let model = "freeze";
    let (pa, pb) = (free_port(), free_port());
    let _a = NodeProc::start("fa", pa, model, 2.0, COOKIE);
    let b = NodeProc::start("fb", pb, model, 2.0, COOKIE);
    let c = router_node(COOKIE).await;
    let cfg = ClusterConfig::new(group_name("synthetic", model));
    let bound = cfg.liveness + cfg.ping_interval;
    assert!(bound <= Duration::from_secs(2), "the stated bound is 2 s");
    let h = Handle::spawn(cfg).await.unwrap();
    c.connect(addr(pa));
    h.wait_members(1, Duration::from_secs(10)).await.unwrap();
    let id_a = in_routing(&h)[0];
    c.connect(addr(pb));
    h.wait_members(2, Duration::from_secs(10)).await.unwrap();
    let id_b = *in_routing(&h).iter().find(|&&id| id != id_a).unwrap();

    const N: u64 = 3000;
    let tasks = load(&h, 8, N);
    wait_until(Duration::from_secs(30), "both serving", || {
        h.members().iter().all(|m| m.counts.answered > 10)
    })
    .await;
    b.signal("-STOP");
    let frozen_at = Instant::now();
    wait_until(Duration::from_secs(5), "B out of routing", || {
        !in_routing(&h).contains(&id_b)
    })
    .await;
    let took = frozen_at.elapsed();
    assert!(
        took <= bound + Duration::from_millis(300),
        "frozen B left routing after {took:?}; the stated bound is {bound:?}"
    );
    let answered = h.stats().answered;
    wait_until(Duration::from_secs(5), "A keeps answering", || {
        h.stats().answered > answered + 100
    })
    .await;
    b.signal("-CONT");
    wait_until(Duration::from_secs(5), "B back in routing", || {
        in_routing(&h).contains(&id_b)
    })
    .await;
    answered_once(tasks, N).await;
    let s = h.stats();
    assert_eq!((s.answered, s.worker_lost), (N, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_gets_nothing_through() {
    let _serial = one_at_a_time().await;
    let model = "cookie";
    let pa = free_port();
    let _a = NodeProc::start("ca", pa, model, 1.0, COOKIE);
    let intruder = router_node("not-the-cookie").await;
    let h = Handle::spawn(ClusterConfig::new(group_name("synthetic", model)))
        .await
        .unwrap();
    intruder.connect(addr(pa));
    assert!(
        !intruder
            .wait_connected(addr(pa), Duration::from_secs(3))
            .await,
        "a session with a wrong cookie must not come up"
    );
    assert!(
        h.members().is_empty(),
        "no pool is visible: {:?}",
        h.members()
    );
    let r = h.try_call(Item::new(1)).await;
    assert!(r.is_err(), "{r:?}");
    // The right cookie gets through to the same node.
    let friend = router_node(COOKIE).await;
    friend.connect(addr(pa));
    assert!(
        friend
            .wait_connected(addr(pa), Duration::from_secs(10))
            .await
    );
    h.wait_members(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(h.call(Item::new(7)).await.map_err(PoolError::from), Ok(7));
}

/// A CA and one node certificate it signs (for `localhost`, good for both
/// ends of a connection), written as PEM files under a fresh directory.
fn make_certs() -> (std::path::PathBuf, [std::path::PathBuf; 3]) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    let dir =
        std::env::temp_dir().join(format!("corral-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let node_key = KeyPair::generate().unwrap();
    let mut node_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    node_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let node_cert = node_params.signed_by(&node_key, &ca).unwrap();
    let paths = [
        dir.join("node.pem"),
        dir.join("node.key"),
        dir.join("ca.pem"),
    ];
    std::fs::write(&paths[0], node_cert.pem()).unwrap();
    std::fs::write(&paths[1], node_key.serialize_pem()).unwrap();
    std::fs::write(&paths[2], ca.pem()).unwrap();
    (dir, paths)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_over_mutual_tls_and_a_plain_node_gets_nothing_through() {
    let _serial = one_at_a_time().await;
    let model = "tls";
    let (dir, [cert, key, ca]) = make_certs();
    let pa = free_port();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let _a = NodeProc::start_with(
        "ta",
        pa,
        model,
        1.0,
        COOKIE,
        &[
            "--tls-cert",
            &s(&cert),
            "--tls-key",
            &s(&key),
            "--tls-ca",
            &s(&ca),
        ],
    );
    let h = Handle::spawn(ClusterConfig::new(group_name("synthetic", model)))
        .await
        .unwrap();
    // A node without TLS: the handshake never completes.
    let plain = router_node(COOKIE).await;
    plain.connect(addr(pa));
    assert!(
        !plain.wait_connected(addr(pa), Duration::from_secs(3)).await,
        "a plain-TCP node must not get a session with a TLS node"
    );
    assert!(h.members().is_empty(), "{:?}", h.members());
    drop(plain);
    // A node with a certificate from the same CA.
    let mut config = NodeConfig::new("tls-router", "127.0.0.1", free_port(), COOKIE);
    config.tls = Some(TlsConfig::from_pem_files(&cert, &key, &ca, "localhost").unwrap());
    let c = Node::start(config).await.unwrap();
    c.connect(addr(pa));
    assert!(
        c.wait_connected(addr(pa), Duration::from_secs(10)).await,
        "TLS session"
    );
    h.wait_members(1, Duration::from_secs(10)).await.unwrap();
    let out = h
        .call_batch((0..5).map(Item::new).collect())
        .await
        .map_err(PoolError::from)
        .unwrap();
    assert_eq!(out, vec![0, 1, 2, 3, 4]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_the_wire_limit_cost_no_node_its_session() {
    use corral_cluster::wire::{request_frame_len, EncodedInputs};
    use corral_core::{Admission, PoolError, Submit};
    let _serial = one_at_a_time().await;
    let model = "oversized";
    let (pa, pb) = (free_port(), free_port());
    let text = ["--input", "text"];
    let _a = NodeProc::start_with("oa", pa, model, 0.0, COOKIE, &text);
    let _b = NodeProc::start_with("ob", pb, model, 0.0, COOKIE, &text);
    let c = router_node(COOKIE).await;
    // A node decoding 64 MiB on a busy machine may answer a ping late:
    // liveness is not what this test is about, so its bound is generous
    // (a failover here would hide a lost session).
    let h = ClusterHandle::<String, u64>::spawn(ClusterConfig {
        liveness: Duration::from_secs(30),
        ..ClusterConfig::new(group_name("synthetic-text", model))
    })
    .await
    .unwrap();
    c.connect(addr(pa));
    c.connect(addr(pb));
    h.wait_members(2, Duration::from_secs(10)).await.unwrap();
    let sessions = |c: &Node| {
        let mut s: Vec<String> = c.sessions().into_iter().map(|s| s.name).collect();
        s.sort();
        s
    };
    let members = |h: &ClusterHandle<String, u64>| {
        let mut m: Vec<ActorId> = h
            .members()
            .into_iter()
            .filter(|m| m.in_routing)
            .map(|m| m.id)
            .collect();
        m.sort_by_key(|id| format!("{id}"));
        m
    };
    // The members can be found (through the first session's group sync)
    // before the router has recorded its session with the second node.
    for port in [pa, pb] {
        assert!(c.wait_connected(addr(port), Duration::from_secs(10)).await);
    }
    let (sessions_before, members_before) = (sessions(&c), members(&h));
    assert_eq!(sessions_before.len(), 2);

    // 16 texts of just under 4 MiB (each within the decoder's item limit)
    // whose request frame is exactly the wire limit, 64 MiB: four times
    // ractor_cluster's own default frame limit.
    let limit = h.config().limits.max_frame;
    let wait = Admission::Wait(Duration::from_secs(30));
    let item = (limit - 2 - 9 - 1 - 4) / 16 - 4;
    let mut under: Vec<String> = (0..16).map(|_| "x".repeat(item)).collect();
    let pad = limit - request_frame_len(wait, None, &EncodedInputs::new(&under));
    under[0].push_str(&"x".repeat(pad));
    assert_eq!(
        request_frame_len(wait, None, &EncodedInputs::new(&under)),
        limit
    );
    let lens: Vec<u64> = under.iter().map(|t| t.len() as u64).collect();
    let mut over = under.clone();
    over[1].push('x');
    assert_eq!(
        request_frame_len(wait, None, &EncodedInputs::new(&over)),
        limit + 1
    );

    assert_eq!(
        h.call_batch(under).await.map_err(PoolError::from),
        Ok(lens),
        "a request at the limit is served"
    );
    // Over by one byte, and by more than the room a node leaves for
    // ractor_cluster's envelope: refused before sending, by the router.
    let mut far_over = over.clone();
    far_over.push("z".repeat(corral_cluster::wire::ENVELOPE));
    for over in [over, far_over] {
        let n = over.len();
        let refused = h
            .submit(Submit::wait(over, Duration::from_secs(30)))
            .await
            .expect_err("over the limit");
        assert!(
            matches!(refused.refusal(), Some(Refusal::TooLarge(m)) if m.contains("bytes on the wire, over the limit")),
            "refused by the router before sending: {refused:?}"
        );
        assert_eq!(
            refused.into_inputs().map(|v| v.len()),
            Some(n),
            "the inputs come back"
        );
    }

    // Nothing was lost or retried, no session closed, and both nodes serve
    // the next request.
    let s = h.stats();
    assert_eq!(
        (s.failed_over, s.worker_lost, s.answered),
        (0, 0, 1),
        "{s:?}"
    );
    assert!(c.is_connected(addr(pa)) && c.is_connected(addr(pb)));
    assert_eq!(sessions(&c), sessions_before, "the same sessions");
    assert_eq!(members(&h), members_before, "the same members, in routing");
    for m in h.members() {
        assert_eq!(m.counts.lost, 0, "{m:?}");
    }
    let next: Vec<String> = (0..8).map(|i| "y".repeat(i)).collect();
    assert_eq!(
        h.call_batch(next).await.map_err(PoolError::from),
        Ok((0..8).collect::<Vec<u64>>())
    );
}
