//! What `corral embed` and `corral rerank` share: texts in (a file or
//! stdin; one per line, or JSON Lines `{"text": …}`), grouped into pool
//! requests as they stream, a bounded number of requests in flight, and
//! the answers written in input order as soon as each and every one before
//! it exist — with a progress bar on a terminal.

use std::collections::VecDeque;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use corral_core::{Backend, Call, PoolHandle};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::task::JoinHandle;

/// The input, output and request options `corral embed` and `corral
/// rerank` share.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LineArgs {
    /// File of texts; stdin when absent or `-`.
    pub(crate) input: Option<PathBuf>,
    /// Read JSON Lines, one `{"text": "…"}` object per line (texts may then
    /// hold newlines), instead of one text per line.
    #[arg(long)]
    pub(crate) jsonl: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Texts per request sent to the pool.
    #[arg(long, default_value_t = 32)]
    pub(crate) request_size: usize,
    /// The longest a text waits, in milliseconds, for companions to fill its
    /// request before the request is sent without them (at most 60000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(..=60_000))]
    pub(crate) batch_wait_ms: u64,
    /// No progress bar, even on a terminal.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

impl LineArgs {
    /// Refuses options no run can use, before a pool is started.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.request_size == 0 {
            anyhow::bail!("--request-size must be at least 1");
        }
        Ok(())
    }

    /// Streams the input through `handle` as [`pump`] does, with up to
    /// `in_flight` requests at once, into the output, with a progress bar
    /// on a terminal. Returns how many texts were answered.
    pub(crate) async fn stream<B, F, W>(
        &self,
        handle: &PoolHandle<B>,
        in_flight: usize,
        input: F,
        write: W,
    ) -> anyhow::Result<usize>
    where
        B: Backend,
        F: Fn(&str) -> B::Input + Clone + Send + 'static,
        W: FnMut(&mut dyn Write, usize, &[String], Vec<B::Output>) -> anyhow::Result<()>,
    {
        let reader = open_input(self.input.as_deref())?;
        let mut out = open_output(self.output.as_ref())?;
        let progress = progress_for(self.input.as_deref(), self.jsonl, self.quiet);
        let grouping = Grouping {
            jsonl: self.jsonl,
            request_size: self.request_size,
            in_flight,
            batch_wait: Duration::from_millis(self.batch_wait_ms),
        };
        let count = pump(reader, &mut out, handle, grouping, &progress, input, write).await;
        progress.finish_and_clear();
        let count = count?;
        out.flush()?;
        Ok(count)
    }
}

/// One request's texts and what the pool answered for them.
type Pending<O> = JoinHandle<(Vec<String>, anyhow::Result<Vec<O>>)>;

/// The input: `path` (a file, or stdin when absent or `-`).
fn open_input(path: Option<&Path>) -> anyhow::Result<Box<dyn BufRead + Send>> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    })
}

/// The output: `path`, or stdout.
fn open_output(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

/// A progress bar for `input` (with its total, hence an ETA, for a file)
/// when stderr is a terminal and not `quiet`; a hidden one otherwise.
fn progress_for(input: Option<&Path>, jsonl: bool, quiet: bool) -> ProgressBar {
    let total = match input {
        Some(p) if p.as_os_str() != "-" && !quiet && std::io::stderr().is_terminal() => {
            count_texts(p, jsonl)
        }
        _ => None,
    };
    progress_bar(quiet, total)
}

/// A progress bar on stderr when it is a terminal and not `quiet`; a hidden
/// one otherwise. With a known total it shows the ETA.
fn progress_bar(quiet: bool, total: Option<u64>) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "{bar:30} {pos}/{len} texts, {per_sec}, ETA {eta}",
        ),
        None => (ProgressBar::no_length(), "{spinner} {pos} texts, {per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Texts in `path` (its lines; non-blank lines for JSON Lines), for the ETA.
fn count_texts(path: &std::path::Path, jsonl: bool) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    let lines = std::io::BufReader::new(file).lines();
    let mut n = 0u64;
    for line in lines {
        let line = line.ok()?;
        if !jsonl || !line.trim().is_empty() {
            n += 1;
        }
    }
    Some(n)
}

#[derive(Deserialize)]
struct JsonInput {
    text: String,
}

/// Reads texts on a blocking thread (stdin may be slow) into a bounded
/// channel.
pub(crate) fn spawn_reader(
    reader: Box<dyn BufRead + Send>,
    jsonl: bool,
) -> tokio::sync::mpsc::Receiver<anyhow::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::task::spawn_blocking(move || {
        for (n, line) in reader.lines().enumerate() {
            let text = line
                .with_context(|| format!("reading input line {}", n + 1))
                .and_then(|line| {
                    if !jsonl {
                        return Ok(Some(line));
                    }
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    serde_json::from_str::<JsonInput>(&line)
                        .map(|j| Some(j.text))
                        .with_context(|| {
                            format!("input line {}: expected {{\"text\": \"…\"}}", n + 1)
                        })
                });
            let stop = text.is_err();
            match text.transpose() {
                None => continue,
                Some(item) => {
                    if tx.blocking_send(item).is_err() || stop {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// How input is read and grouped into requests.
struct Grouping {
    /// JSON Lines (`{"text": …}` per line) rather than one text per line.
    jsonl: bool,
    /// Most texts in one request.
    request_size: usize,
    /// Most requests in flight at once.
    in_flight: usize,
    /// Longest a text waits for companions before its request is sent.
    batch_wait: Duration,
}

/// Keeps up to `in_flight` requests running and writes answers in input
/// order, each as soon as it and every earlier one are there. A request is
/// sent when it is full, when its first text has waited `batch_wait`, or at
/// the end of input — whichever comes first — and a slot is free. Each
/// text becomes the pool's input by `input`; `write` gets each request's
/// texts (with the input index of the first) and the pool's answers for
/// them, in input order. Returns how many texts were answered.
async fn pump<B, F, W>(
    reader: Box<dyn BufRead + Send>,
    out: &mut dyn Write,
    handle: &PoolHandle<B>,
    grouping: Grouping,
    progress: &ProgressBar,
    input: F,
    mut write: W,
) -> anyhow::Result<usize>
where
    B: Backend,
    F: Fn(&str) -> B::Input + Clone + Send + 'static,
    W: FnMut(&mut dyn Write, usize, &[String], Vec<B::Output>) -> anyhow::Result<()>,
{
    let Grouping {
        jsonl,
        request_size,
        in_flight,
        batch_wait,
    } = grouping;
    let mut texts = spawn_reader(reader, jsonl);
    let mut pending: VecDeque<Pending<B::Output>> = VecDeque::new();
    let mut batch: Vec<String> = Vec::with_capacity(request_size);
    // When the oldest text in `batch` stops waiting for companions.
    let mut send_by: Option<tokio::time::Instant> = None;
    let mut input_done = false;
    let mut count = 0usize;
    loop {
        let now = tokio::time::Instant::now();
        let due = batch.len() >= request_size || input_done || send_by.is_some_and(|t| t <= now);
        if !batch.is_empty() && due && pending.len() < in_flight {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(request_size));
            pending.push_back(send(handle, full, input.clone()));
            send_by = None;
        }
        if input_done && batch.is_empty() && pending.is_empty() {
            return Ok(count);
        }
        // A timer only while it can still fire in the future: a passed one
        // waits for a free slot (an answer) instead.
        let wait = send_by.filter(|t| *t > now && pending.len() < in_flight);
        tokio::select! {
            biased;
            answer = async { pending.front_mut().expect("checked non-empty").await },
                if !pending.is_empty() =>
            {
                pending.pop_front();
                let (texts, result) = answer.context("a request task panicked")?;
                write(&mut *out, count, &texts, result?)?;
                out.flush()?;
                progress.inc(texts.len() as u64);
                count += texts.len();
            }
            text = texts.recv(), if !input_done && batch.len() < request_size => match text {
                Some(text) => {
                    batch.push(text?);
                    if send_by.is_none() {
                        send_by = Some(tokio::time::Instant::now() + batch_wait);
                    }
                }
                None => input_done = true,
            },
            () = tokio::time::sleep_until(wait.unwrap_or(now)), if wait.is_some() => {}
        }
    }
}

fn send<B, F>(handle: &PoolHandle<B>, texts: Vec<String>, input: F) -> Pending<B::Output>
where
    B: Backend,
    F: Fn(&str) -> B::Input + Send + 'static,
{
    let handle = handle.clone();
    tokio::spawn(async move {
        let inputs = texts.iter().map(|t| input(t)).collect();
        let result = handle.call_batch(inputs).await.map_err(|e| {
            let e = corral_core::PoolError::from(e);
            anyhow::Error::from(e)
        });
        (texts, result)
    })
}
