//! Prometheus export of the `metrics` facade, and the names of the series
//! the server adds to the pool's own (`corral_worker_depth`,
//! `corral_rejected_total{reason}`, … — see `corral_core::stats`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests answered, by `route` and `status`.
pub const HTTP_REQUESTS: &str = "corral_http_requests_total";
/// HTTP request duration in seconds, by `route` and `status`.
pub const HTTP_DURATION: &str = "corral_http_request_duration_seconds";
/// Inputs per embedding request, by `model`.
pub const REQUEST_INPUTS: &str = "corral_request_inputs";
/// Word pieces per embedding request, by `model`.
pub const REQUEST_TOKENS: &str = "corral_request_tokens";
/// Seconds between submission to the pool and the start of the batch that
/// ran the request, by `model`.
pub const QUEUE_TIME: &str = "corral_queue_time_seconds";
/// Seconds the batch that ran the request took, by `model`.
pub const COMPUTE_TIME: &str = "corral_compute_time_seconds";

/// Whether a cluster member is in routing (1) or not (0), by `model` and
/// `member` (its node's name): out when silent past the liveness bound,
/// gone, or refused for its settings.
pub const MEMBER_IN_ROUTING: &str = "corral_member_in_routing";
/// A cluster member pool's requests queued and running, as it last
/// reported, by `model` and `member`.
pub const MEMBER_DEPTH: &str = "corral_member_depth";
/// This front's requests out to a cluster member now, by `model` and
/// `member`.
pub const MEMBER_IN_FLIGHT: &str = "corral_member_in_flight";
/// A cluster member pool's measured time per request in seconds, as it last
/// reported, by `model` and `member`.
pub const MEMBER_SECONDS_PER_REQUEST: &str = "corral_member_seconds_per_request";
/// Requests this front sent to a cluster member, by `model`, `member` and
/// `outcome` (`sent`, `answered`, `refused` — full, tried elsewhere —,
/// `lost` — the member went with the request in flight).
pub const MEMBER_REQUESTS: &str = "corral_member_requests_total";
/// A cluster member's share of the requests this front got answered, 0 to
/// 1, by `model` and `member`.
pub const MEMBER_SHARE: &str = "corral_member_share";
/// 1 for a cluster member kept out of routing because its settings differ
/// from the front's model, or because it has not answered the front's
/// describe (`reason` "no promise: …": a node older than the front, or one
/// frozen since it joined), by `model`, `member` and `reason`; 0 once that
/// no longer holds (it answered at last, or left).
pub const MEMBER_REFUSED: &str = "corral_member_refused";

const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const COUNTS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as this process's `metrics` recorder
/// (once; later calls return the same handle), so that the pools' figures
/// and the server's own appear on `/metrics`. Install it before spawning
/// pools.
///
/// # Errors
/// When another recorder is installed already (a host app with its own
/// exporter: it then serves the figures itself).
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(REQUEST_INPUTS.into()), COUNTS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(REQUEST_TOKENS.into()), COUNTS)
                })
                .map_err(|e| e.to_string())?;
            builder.install_recorder().map_err(|e| e.to_string())
        })
        .clone()
}
