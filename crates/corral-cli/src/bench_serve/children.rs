//! The servers the bench starts as child processes: `corral serve`, and
//! infinity-emb side by side when it is installed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_embed::{Engine, Quantize};

use super::Args;
use crate::embed_cmd::{ModelArgs, PromptArgs};

/// `corral serve` started as a child process on a free loopback port.
pub(crate) struct ChildServer {
    child: Child,
    pub(crate) base: String,
}

impl ChildServer {
    pub(crate) fn start(args: &Args, quantize: Quantize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the corral binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(["--quantize", &quantize.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(d) = &args.model_dir {
            cmd.arg("--model-dir").arg(d);
        }
        cmd.args(["--model-name", &args.model_name()?]);
        if let Some(w) = args.workers {
            cmd.args(["--workers", &w.to_string()]);
        }
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let mut child = cmd.spawn().context("starting corral serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("corral: listening on ") {
                        break url.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    bail!("corral serve exited before listening");
                }
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, base })
    }

    /// SIGTERM (a graceful drain), then wait.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
    }
}

/// infinity-emb serving the same model directory on a free loopback port.
pub(crate) struct Infinity {
    child: Child,
    pub(crate) base: String,
}

impl Infinity {
    pub(crate) fn start(args: &Args) -> anyhow::Result<Self> {
        let dir = ModelArgs {
            model_dir: args.model_dir.clone(),
            workers: None,
            threads: None,
            no_normalize: false,
            pooling: None,
            engine: Engine::Fast,
            quantize: Quantize::None,
            prompt: PromptArgs::default(),
        }
        .resolve_dir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("infinity_emb")
            .arg("v2")
            .arg("--model-id")
            .arg(&dir)
            .args([
                "--engine",
                "torch",
                "--device",
                "cpu",
                "--url-prefix",
                "/v1",
            ])
            .args([
                "--served-model-name",
                &args.model_name()?,
                "--port",
                &port.to_string(),
            ])
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting infinity_emb")?;
        // Its log, kept (the last lines, bounded) to say why it stopped if
        // it does; read on a thread of its own so the pipe never fills.
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() == 20 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        let mut me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let tail = || {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.iter().cloned().collect::<Vec<_>>().join("\n")
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = me.child.try_wait()? {
                // Give the reader a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                bail!(
                    "infinity_emb exited ({status}) before listening:\n{}",
                    tail()
                );
            }
            if Instant::now() > deadline {
                bail!("infinity_emb did not listen within 180 s:\n{}", tail());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(me)
    }
}

impl Drop for Infinity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn infinity_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import infinity_emb"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
