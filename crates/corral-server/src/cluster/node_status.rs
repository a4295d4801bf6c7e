//! [`serve_node_status`]: `corral node --http-port`, the `/health` and
//! `/metrics` of a node's own pool.

use std::future::Future;
use std::sync::Arc;

use corral_core::{HealthReport, PoolError, WorkerState};

use crate::model::BoxFuture;

/// What `corral node --http-port` serves: `GET /health` — 200 while the
/// node's pool has a ready worker and is not draining, else 503 with the
/// reason (JSON: `status`, `reason`, `ready_workers`, `workers`,
/// `queue_depth`) — and `GET /metrics`, the process's Prometheus text
/// (404 when `metrics` is `None`), until `shutdown` completes.
///
/// # Errors
/// An I/O error from the listener.
///
/// # Cancel safety
/// Dropping the future stops serving.
pub async fn serve_node_status<H>(
    listener: tokio::net::TcpListener,
    health: H,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    H: Fn() -> BoxFuture<'static, Result<HealthReport, PoolError>> + Send + Sync + 'static,
{
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let health = Arc::new(health);
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(move || {
                let health = health.clone();
                async move {
                    let (status, body) = node_health(health().await);
                    (status, axum::Json(body)).into_response()
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics {
                        Some(h) => {
                            h.run_upkeep();
                            (
                                [(
                                    axum::http::header::CONTENT_TYPE,
                                    "text/plain; version=0.0.4",
                                )],
                                h.render(),
                            )
                                .into_response()
                        }
                        None => (StatusCode::NOT_FOUND, "no metrics recorder").into_response(),
                    }
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn node_health(
    report: Result<HealthReport, PoolError>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use axum::http::StatusCode;
    match report {
        Ok(r) => {
            let ready = r
                .workers
                .iter()
                .filter(|w| w.state == WorkerState::Ready)
                .count();
            let reason = if r.draining {
                Some("draining for shutdown".to_owned())
            } else if ready == 0 {
                Some(format!(
                    "no ready worker (health {:?}, {} workers)",
                    r.health,
                    r.workers.len()
                ))
            } else {
                None
            };
            let status = if reason.is_none() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::json!({
                "status": if reason.is_none() { "ok" } else { "unavailable" },
                "reason": reason,
                "ready_workers": ready,
                "workers": r.workers.len(),
                "queue_depth": r.total_depth(),
            });
            (status, body)
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable", "reason": e.to_string() }),
        ),
    }
}
