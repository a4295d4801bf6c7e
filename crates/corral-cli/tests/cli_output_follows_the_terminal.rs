//! What the CLI prints around its real output: `corral embed` draws a
//! progress bar (texts done of the total, rate, ETA) when stderr is a
//! terminal and stays silent when stderr is piped or with `--quiet`;
//! `corral serve --log-format json` writes one JSON object per line, and the
//! request's line carries its span's route, model, inputs, tokens, status
//! and the pool's queue and compute times. Log lines are coloured on a
//! terminal only: stderr redirected to a file gets no escape sequences, and
//! neither does a terminal while `NO_COLOR` is set.
//!
//! The terminal is a real pseudo-terminal from util-linux's `script`. Fails —
//! never skips — when `script` or the model is missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{model_dir, start_serve};

const TEXTS: usize = 300;

fn corral() -> &'static str {
    env!("CARGO_BIN_EXE_corral")
}

fn input_file(dir: &Path) -> PathBuf {
    let path = dir.join("texts.txt");
    let lines: Vec<String> = (0..TEXTS)
        .map(|i| format!("text number {i} for the progress bar, long enough to take a moment"))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// `corral embed` over the input file, run under a pseudo-terminal when
/// `tty`; returns what reached the terminal (or the piped stderr).
fn embed(tty: bool, extra: &[&str]) -> String {
    let dir = tempdir();
    let input = input_file(&dir);
    let output = dir.join("out.jsonl");
    let mut args: Vec<String> = vec![
        "embed".into(),
        "--workers".into(),
        "1".into(),
        "--request-size".into(),
        "4".into(),
        "--output".into(),
        output.display().to_string(),
        "--model-dir".into(),
        model_dir().display().to_string(),
        input.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = if tty {
        // `script -qec CMD /dev/null`: CMD's stdio is a fresh pty, whose
        // transcript `script` copies to its own stdout.
        let cmd = std::iter::once(corral().to_string())
            .chain(args)
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ");
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("util-linux `script` is required for this test")
    } else {
        Command::new(corral())
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(out.status.success(), "{out:?}");
    let lines = std::fs::read_to_string(&output).unwrap().lines().count();
    assert_eq!(lines, TEXTS, "every text embedded");
    let _ = std::fs::remove_dir_all(&dir);
    if tty {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "corral-cli-out-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn progress_bar_on_a_terminal_only_and_never_with_quiet() {
    let on_tty = embed(true, &[]);
    assert!(
        on_tty.contains(&format!("/{TEXTS} texts")) && on_tty.contains("ETA"),
        "a terminal shows texts done of the total and the ETA:\n{on_tty}"
    );
    let quiet = embed(true, &["--quiet"]);
    assert!(
        !quiet.contains("texts"),
        "--quiet draws nothing, even on a terminal:\n{quiet}"
    );
    let piped = embed(false, &[]);
    assert!(
        piped.trim().is_empty(),
        "with stderr piped nothing but logs is written:\n{piped}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_requests_span() {
    let mut serve = start_serve(
        &["--workers", "1", "--log-format", "json"],
        &[],
        "info",
        true,
    );
    let base = serve.base.clone();
    let stderr = serve.take_stderr();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = client
                .post(format!("{base}/v1/embeddings"))
                .json(&serde_json::json!({ "input": ["json logs", "second text"] }))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => return 200,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("never served: {other:?}"),
            }
        }
    });
    assert_eq!(status, 200);

    // Every line is a JSON object; wait (bounded) for the request's own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("no log line for the embedding request");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        let span = &v["span"];
        if v["fields"]["message"] == "answered" && span["route"] == "/v1/embeddings" {
            break v;
        }
    };
    drop(serve);
    let span = &found["span"];
    assert_eq!(span["name"], "request", "{found}");
    assert_eq!(span["status"], 200, "{found}");
    assert_eq!(span["model"], "all-MiniLM-L6-v2", "{found}");
    assert_eq!(span["inputs"], 2, "{found}");
    assert!(span["tokens"].as_u64().unwrap() >= 6, "{found}");
    assert!(
        span["queue_ms"].is_number() && span["compute_ms"].is_number(),
        "{found}"
    );
    assert!(found["fields"]["latency_ms"].is_number(), "{found}");
}

/// Where `logs_of_one_embed` points corral's stderr.
#[derive(Clone, Copy, PartialEq)]
enum Stderr {
    File,
    Terminal,
}

/// `corral embed --quiet` of one text with info logs, its stderr a file or
/// a pseudo-terminal, `NO_COLOR` set to `no_color` (or unset); returns what
/// reached the file (or the terminal).
fn logs_of_one_embed(stderr: Stderr, no_color: Option<&str>) -> Vec<u8> {
    let dir = tempdir();
    let input = dir.join("one.txt");
    std::fs::write(&input, "one text\n").unwrap();
    let args: Vec<String> = vec![
        corral().into(),
        "embed".into(),
        "--quiet".into(),
        "--workers".into(),
        "1".into(),
        "--output".into(),
        dir.join("out.jsonl").display().to_string(),
        "--model-dir".into(),
        model_dir().display().to_string(),
        input.display().to_string(),
    ];
    let mut cmd = match stderr {
        Stderr::Terminal => {
            let line = args
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut cmd = Command::new("script");
            cmd.args(["-qec", &line, "/dev/null"]);
            cmd
        }
        Stderr::File => {
            let mut cmd = Command::new(&args[0]);
            cmd.args(&args[1..])
                .stderr(std::fs::File::create(dir.join("log")).unwrap());
            cmd
        }
    };
    cmd.env("RUST_LOG", "info").stdin(Stdio::null());
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let out = cmd
        .output()
        .expect("util-linux `script` is required for this test");
    assert!(out.status.success(), "{out:?}");
    let written = match stderr {
        Stderr::Terminal => out.stdout,
        Stderr::File => std::fs::read(dir.join("log")).unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&written);
    assert!(
        text.contains("embedding pool ready"),
        "no info log line reached it:\n{text}"
    );
    written
}

const ESC: u8 = 0x1b;

#[test]
fn logs_are_coloured_on_a_terminal_only_and_never_with_no_color() {
    let file = logs_of_one_embed(Stderr::File, None);
    assert!(
        !file.contains(&ESC),
        "stderr redirected to a file got escape sequences:\n{}",
        String::from_utf8_lossy(&file).escape_debug()
    );
    let tty = logs_of_one_embed(Stderr::Terminal, None);
    assert!(
        tty.windows(2).any(|w| w == [ESC, b'[']),
        "a terminal gets coloured log lines:\n{}",
        String::from_utf8_lossy(&tty).escape_debug()
    );
    for no_color in ["1", "yes"] {
        let plain = logs_of_one_embed(Stderr::Terminal, Some(no_color));
        assert!(
            !plain.contains(&ESC),
            "NO_COLOR={no_color} on a terminal still got escape sequences:\n{}",
            String::from_utf8_lossy(&plain).escape_debug()
        );
    }
    // NO_COLOR set but empty does not count (the convention's own rule).
    let empty = logs_of_one_embed(Stderr::Terminal, Some(""));
    assert!(empty.windows(2).any(|w| w == [ESC, b'[']));
}
