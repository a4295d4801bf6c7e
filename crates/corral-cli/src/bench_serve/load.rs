//! The load generator: closed-loop clients against one server, each load
//! point's latencies and throughput, and the server's own `/metrics` time
//! split at one client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Workload;

/// One load point's result.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) clients: usize,
    pub(crate) batch: usize,
    pub(crate) sentences_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    /// Mean latency of every request answered during the point, warm-up
    /// included (what the server's `/metrics` counted too).
    pub(crate) mean_ms: f64,
    /// Where the time went, from the server's `/metrics` (one client only).
    pub(crate) split: Option<TimeSplit>,
}

/// Mean milliseconds per request over one load point, from the server's
/// `/metrics` (histogram sums ÷ counts, differences across the point):
/// the client's own mean latency, the server's HTTP handler time (parsing,
/// tokenising, the pool and the answer's encoding), the pool's queue time
/// and the engine's compute time (one forward pass with pooling).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeSplit {
    pub(crate) client_ms: f64,
    pub(crate) handler_ms: f64,
    pub(crate) queue_ms: f64,
    pub(crate) compute_ms: f64,
}

impl TimeSplit {
    /// The median of each part over `splits`.
    fn median(splits: &[TimeSplit]) -> Option<TimeSplit> {
        if splits.is_empty() {
            return None;
        }
        let med = |f: fn(&TimeSplit) -> f64| {
            let mut v: Vec<f64> = splits.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Some(TimeSplit {
            client_ms: med(|s| s.client_ms),
            handler_ms: med(|s| s.handler_ms),
            queue_ms: med(|s| s.queue_ms),
            compute_ms: med(|s| s.compute_ms),
        })
    }
}

/// (sum, count) of each histogram the split reads, from one `/metrics` text:
/// the HTTP duration of the embedding routes, the queue time, the compute
/// time.
#[derive(Debug, Clone, Copy, Default)]
struct Scrape {
    handler: (f64, f64),
    queue: (f64, f64),
    compute: (f64, f64),
}

impl Scrape {
    /// Parses the Prometheus text exposition `text`: every label set of a
    /// series is summed (for the HTTP duration, only the lines naming an
    /// embedding route).
    fn parse(text: &str) -> Self {
        use corral_server::telemetry::{COMPUTE_TIME, HTTP_DURATION, QUEUE_TIME};
        let mut me = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            let slot = if name.starts_with(HTTP_DURATION) {
                if !series.contains("embed") {
                    continue;
                }
                &mut me.handler
            } else if name.starts_with(QUEUE_TIME) {
                &mut me.queue
            } else if name.starts_with(COMPUTE_TIME) {
                &mut me.compute
            } else {
                continue;
            };
            if name.ends_with("_sum") {
                slot.0 += value;
            } else if name.ends_with("_count") {
                slot.1 += value;
            }
        }
        me
    }

    /// Mean milliseconds per request between `before` and `self`.
    fn mean_ms(before: (f64, f64), after: (f64, f64)) -> f64 {
        let n = after.1 - before.1;
        if n > 0.0 {
            (after.0 - before.0) / n * 1e3
        } else {
            f64::NAN
        }
    }
}

/// The server's `/metrics` at `base`, parsed; `None` when it cannot be read
/// (a `--url` server without it).
async fn scrape(client: &reqwest::Client, base: &str) -> Option<Scrape> {
    let r = client.get(format!("{base}/metrics")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(Scrape::parse(&r.text().await.ok()?))
}

/// The median of each load point over rounds (sentences/s, p50, p99 each
/// taken as its own median; requests and errors summed).
pub(crate) fn median_points(rounds: &[Vec<Point>]) -> Vec<Point> {
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (0..rounds[0].len())
        .map(|k| Point {
            clients: rounds[0][k].clients,
            batch: rounds[0][k].batch,
            sentences_per_s: med(rounds.iter().map(|r| r[k].sentences_per_s).collect()),
            p50_ms: med(rounds.iter().map(|r| r[k].p50_ms).collect()),
            p99_ms: med(rounds.iter().map(|r| r[k].p99_ms).collect()),
            requests: rounds.iter().map(|r| r[k].requests).sum(),
            errors: rounds.iter().map(|r| r[k].errors).sum(),
            mean_ms: med(rounds.iter().map(|r| r[k].mean_ms).collect()),
            split: TimeSplit::median(&rounds.iter().filter_map(|r| r[k].split).collect::<Vec<_>>()),
        })
        .collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `clients` closed-loop clients for warm-up + `seconds`, each sending
/// `batch` sentences (or documents) per request as `work` says; counts what
/// completes inside the measured window.
async fn load_point(
    base: &str,
    work: &Workload,
    corpus: Arc<Vec<String>>,
    clients: usize,
    batch: usize,
    warmup: Duration,
    seconds: Duration,
) -> Point {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + seconds;
    let url = format!("{base}{}", work.path());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let corpus = corpus.clone();
        let url = url.clone();
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut next = (c * 7919) % corpus.len();
            let (mut lat, mut sentences, mut errors) = (Vec::new(), 0usize, 0usize);
            let mut all = (0.0f64, 0usize);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let texts: Vec<&str> = (0..batch)
                    .map(|k| corpus[(next + k) % corpus.len()].as_str())
                    .collect();
                let query = corpus[(next + corpus.len() - 1) % corpus.len()].as_str();
                next = (next + batch) % corpus.len();
                let body = work.body(query, &texts);
                // A request still running at the end of the window is
                // abandoned; one that completes inside it counts.
                let send = async {
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        Ok(_) | Err(_) => false,
                    }
                };
                let Ok(ok) = tokio::time::timeout_at(end.into(), send).await else {
                    break;
                };
                let done = Instant::now();
                if ok {
                    all.0 += done.duration_since(sent).as_secs_f64() * 1e3;
                    all.1 += 1;
                }
                if done >= measure_from {
                    if ok {
                        lat.push(done.duration_since(sent).as_secs_f64() * 1e3);
                        sentences += batch;
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, sentences, errors, all)
        }));
    }
    let (mut lat, mut sentences, mut errors) = (Vec::new(), 0, 0);
    let mut all = (0.0f64, 0usize);
    for t in tasks {
        if let Ok((l, s, e, a)) = t.await {
            lat.extend(l);
            sentences += s;
            errors += e;
            all.0 += a.0;
            all.1 += a.1;
        }
    }
    lat.sort_by(f64::total_cmp);
    Point {
        clients,
        batch,
        sentences_per_s: sentences as f64 / seconds.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        requests: lat.len(),
        errors,
        mean_ms: all.0 / all.1.max(1) as f64,
        split: None,
    }
}

/// Every load point against `base`, in order. At one client the point
/// also reads `/metrics` before and after for the [`TimeSplit`]; that
/// point's requests are counted from the first one sent (the warm-up's
/// included, which `/metrics` cannot tell apart), the client's mean over
/// the same requests.
pub(crate) async fn all_points(
    base: &str,
    work: &Workload,
    shapes: &[(usize, usize)],
    corpus: &Arc<Vec<String>>,
    warmup: Duration,
    seconds: Duration,
) -> Vec<Point> {
    let mut points = Vec::new();
    let http = reqwest::Client::new();
    for &(clients, batch) in shapes {
        let before = if clients == 1 {
            scrape(&http, base).await
        } else {
            None
        };
        let mut p = load_point(base, work, corpus.clone(), clients, batch, warmup, seconds).await;
        if let (Some(b), Some(a)) = (before, scrape(&http, base).await) {
            let handler_ms = Scrape::mean_ms(b.handler, a.handler);
            p.split = Some(TimeSplit {
                client_ms: p.mean_ms,
                handler_ms,
                queue_ms: Scrape::mean_ms(b.queue, a.queue),
                compute_ms: Scrape::mean_ms(b.compute, a.compute),
            });
        }
        eprintln!(
            "  {clients:>2} clients × {batch:>2}: {:.1} sentences/s, p50 {:.1} ms, p99 {:.1} ms ({} requests, {} errors)",
            p.sentences_per_s, p.p50_ms, p.p99_ms, p.requests, p.errors
        );
        points.push(p);
    }
    points
}
