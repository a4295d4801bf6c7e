//! What the tests of `corral serve --cluster` over `corral node`s share:
//! child processes on free loopback ports, a node and a front of the real
//! model, the golden vectors, and reading the front's Prometheus page.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The model the nodes host and the front serves.
pub const MODEL: &str = "all-MiniLM-L6-v2";

/// A free port on loopback (free when asked).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `v` as owned strings.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Spawns `corral ARGS` and returns once a stdout line contains `marker`,
/// with what follows it on that line; panics after two minutes.
pub fn spawn_until(args: &[String], marker: &'static str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corral");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let until = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("corral {args:?} did not print {marker:?}: {seen:?}"));
        if let Some(i) = line.find(marker) {
            return (proc, line[i + marker.len()..].trim().to_owned());
        }
        seen.push(line);
    }
}

/// `corral node --name NAME --port PORT` hosting `dir` as [`MODEL`], one
/// worker of one thread, with `extra`; returns once it is ready (with
/// `--http-port`, once it printed that address, which it returns).
pub fn node(cookie: &str, name: &str, port: u16, dir: &str, extra: &[&str]) -> (Proc, String) {
    let port = port.to_string();
    let mut args = strings(&["node", "--name", name, "--cookie", cookie, "--port", &port]);
    args.extend(strings(&["--model-name", MODEL, "--model-dir", dir]));
    args.extend(strings(&["--workers", "1", "--threads", "1"]));
    args.extend(strings(extra));
    let marker = if extra.contains(&"--http-port") {
        "health and metrics on "
    } else {
        " ready on "
    };
    spawn_until(&args, marker)
}

/// `corral serve --cluster` serving [`MODEL`] from `dir` through the
/// cluster, dialling `peers`, with `extra`; returns it and its base URL.
pub fn front(cookie: &str, peers: &[u16], dir: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = strings(&["serve", "--port", "0", "--cluster", "--name", "front"]);
    args.extend(strings(&["--cookie", cookie, "--cluster-port"]));
    args.push(free_port().to_string());
    for p in peers {
        args.push("--peer".into());
        args.push(format!("127.0.0.1:{p}"));
    }
    args.push("--model".into());
    args.push(format!("{MODEL}={dir}"));
    args.extend(strings(extra));
    spawn_until(&args, "corral: listening on ")
}

/// One golden case of sentence-transformers.
#[derive(serde::Deserialize, Clone)]
pub struct Case {
    /// The text.
    pub text: String,
    /// Its unit vector.
    pub embedding: Vec<f32>,
}

/// The golden file's path.
pub fn golden_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/fixtures/minilm_l6_v2_public.json")
}

/// The golden cases within the model's length.
pub fn golden() -> Vec<Case> {
    #[derive(serde::Deserialize)]
    struct Golden {
        cases: Vec<Case>,
    }
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
    g.cases.into_iter().filter(|c| c.text.len() < 600).collect()
}

/// A JSON array of numbers as a vector; panics, showing it, on anything
/// else.
pub fn vector(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a vector: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Sends `sig` (`-STOP`, `-CONT`, …) to `p` with `kill`.
pub fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig}");
}

/// The cosine of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The value of the series `name{…}` on a Prometheus page whose labels
/// include every `k="v"` of `labels`.
pub fn series(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Status and body of a GET.
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `url` until `ok` holds for its status and body, and returns the
/// body; panics, naming `what`, after a minute.
pub async fn until(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    ok: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(client, url).await;
        if ok(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never {what}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
