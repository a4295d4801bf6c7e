//! `corral embed` on a pipe that stays open writes each answer as soon as it
//! exists: a line is answered while the next has not been written yet (a
//! line waits for companions only `--batch-wait-ms`, not for a full request
//! or the end of input), and answers keep input order.
//!
//! Needs all-MiniLM-L6-v2; fails, never skips, without it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

mod common;

use common::model_dir;

/// Forwards each line of `from` to the returned channel, on its own thread.
fn lines_of(from: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The text of the next JSON line on `out`, waiting at most `within`.
fn next_answer(out: &Receiver<String>, within: Duration, what: &str) -> String {
    let line = out
        .recv_timeout(within)
        .unwrap_or_else(|e| panic!("no answer for {what} within {within:?} ({e})"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["embedding"].as_array().map(Vec::len), Some(384), "{line}");
    v["text"].as_str().unwrap().to_owned()
}

#[test]
fn each_line_is_answered_before_the_next_one_arrives() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["embed", "--workers", "1", "--model-dir"])
        .arg(model_dir())
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let logs = lines_of(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();

    // The pool is ready once it says so (loading is not what is measured).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = logs
            .recv_timeout(left)
            .expect("corral embed never said its pool was ready");
        if line.contains("embedding pool ready") {
            break;
        }
    }
    std::thread::spawn(move || logs.iter().for_each(drop));

    // One line, and the pipe stays open: its answer must come anyway.
    stdin.write_all(b"the first line\n").unwrap();
    stdin.flush().unwrap();
    let first = next_answer(&out, Duration::from_secs(30), "the first line");
    assert_eq!(first, "the first line");

    stdin.write_all(b"the second line\n").unwrap();
    stdin.flush().unwrap();
    let second = next_answer(&out, Duration::from_secs(30), "the second line");
    assert_eq!(second, "the second line");

    // A burst is answered whole, in input order.
    let burst: Vec<String> = (0..40).map(|i| format!("burst line {i}")).collect();
    stdin
        .write_all((burst.join("\n") + "\n").as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    for want in &burst {
        assert_eq!(&next_answer(&out, Duration::from_secs(30), want), want);
    }

    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("corral embed did not exit at the end of its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "corral embed exited with {status}");
    assert!(
        out.recv_timeout(Duration::from_secs(5)).is_err(),
        "nothing after the last answer"
    );
}
