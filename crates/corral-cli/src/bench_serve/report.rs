//! The report's parts beside the main table: infinity-emb's quoted
//! figures, the one-client latency and time split, and the rerank report.

use corral_embed::Quantize;

use super::load::median_points;
use super::Point;

/// infinity-emb's figures on this project's machine, quoted from
/// `BASELINE.md` (clients, sentences per request, sentences/s, p50 ms, p99 ms).
pub(crate) const INFINITY_QUOTED: [(usize, usize, f64, f64, f64); 4] = [
    (1, 1, 39.6, 25.0, 36.0),
    (16, 1, 67.2, 230.0, 299.0),
    (64, 1, 63.3, 907.0, 1339.0),
    (4, 32, 76.8, 1518.0, 1734.0),
];

/// At one client × one sentence, per mode: p50 and p99 against the
/// targets (≤ 12 ms fp32, ≤ 8 ms int8 and bf16 on 2 cores), and where a lone
/// request's mean time goes ([`TimeSplit`](super::load::TimeSplit), medians over the rounds).
pub(crate) fn report_split(modes: &[Quantize], medians: &[Vec<Point>]) {
    for (mode, points) in modes.iter().zip(medians) {
        let Some(p) = points.iter().find(|p| (p.clients, p.batch) == (1, 1)) else {
            continue;
        };
        let target = match mode {
            Quantize::None => 12,
            Quantize::Int8 | Quantize::Bf16 => 8,
        };
        let name = match mode {
            Quantize::None => "fp32",
            Quantize::Int8 => "int8",
            Quantize::Bf16 => "bf16",
        };
        println!(
            "latency_1x1_{name}: p50 {:.2} ms, p99 {:.2} ms  (target p50 ≤ {target} ms on 2 cores)",
            p.p50_ms, p.p99_ms
        );
        if let Some(s) = p.split {
            let outside = s.client_ms - s.handler_ms;
            let inside = s.handler_ms - s.queue_ms - s.compute_ms;
            println!(
                "time_split_1x1_{name}: mean {:.2} ms = engine {:.2} + pool queue {:.2} + rest of the handler (parsing, tokenising, hops, answer) {:.2} + outside the handler (loopback, HTTP framing, client) {:.2}",
                s.client_ms, s.compute_ms, s.queue_ms, inside, outside
            );
        }
    }
}

/// The rerank report: documents/s and latency per load point, and, when
/// infinity-emb ran side by side, the median ratio of documents/s (target
/// ≥ 2 at 16 clients) and of p50 at one client (target ≤ 1).
pub(crate) fn report_rerank(corral_rounds: &[Vec<Point>], infinity_rounds: &[Vec<Point>]) {
    let points = median_points(corral_rounds);
    println!("| system | clients × documents per request | documents/s | p50 | p99 | errors |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |system: &str, p: &Point| {
        println!(
            "| {system} | {} × {} | {:.1} | {:.1} ms | {:.1} ms | {} |",
            p.clients, p.batch, p.sentences_per_s, p.p50_ms, p.p99_ms, p.errors
        );
    };
    for p in &points {
        row("corral serve", p);
    }
    if infinity_rounds.is_empty() || infinity_rounds.len() != corral_rounds.len() {
        println!();
        println!(
            "rerank_ratio: not measured (infinity_emb is not installed; no figure of it is quoted)"
        );
        return;
    }
    for p in &median_points(infinity_rounds) {
        row("infinity-emb (measured in this run)", p);
    }
    println!();
    for (k, p) in points.iter().enumerate() {
        let per_s = |f: fn(&Point) -> f64| {
            crate::median_range(
                corral_rounds
                    .iter()
                    .zip(infinity_rounds)
                    .map(|(c, i)| f(&c[k]) / f(&i[k]))
                    .collect(),
            )
        };
        let (med, lo, hi) = per_s(|p| p.sentences_per_s);
        println!(
            "rerank_ratio_{}x{}: {med:.2}  (documents/s, range {lo:.2}–{hi:.2} over {} alternating rounds; target ≥ 2.0 at 16 clients)",
            p.clients,
            p.batch,
            corral_rounds.len()
        );
        if p.clients == 1 {
            let (med, lo, hi) = per_s(|p| p.p50_ms);
            println!(
                "rerank_p50_ratio_1x{}: {med:.2}  (corral's p50 / infinity's, range {lo:.2}–{hi:.2}; target ≤ 1.0)",
                p.batch
            );
        }
    }
}
