//! The admin port: `/metrics` (Prometheus), `/livez`, which fails while a reconcile is
//! stuck (so the kubelet restarts the process and the standby takes over), and `/readyz`,
//! which turns ready only once every watch has delivered its initial list.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// A reconcile running longer than this is stuck: every API call has a timeout (see
    /// `REQUEST_TIMEOUT`), so even a pass of 500 creates in rounds ends well within it.
    pub stuck_after: Duration,
}

/// How long a reconcile may run before `/livez` fails.
pub const STUCK_AFTER: Duration = Duration::from_secs(600);

pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(admin)
}

pub async fn serve(addr: SocketAddr, admin: Admin) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin server listening");
    axum::serve(listener, router(admin)).await
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.metrics.encode(),
    )
}

async fn livez(State(admin): State<Admin>) -> impl IntoResponse {
    match admin.metrics.longest_reconcile() {
        Some(running) if running > admin.stuck_after => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("a reconcile has run for {}s\n", running.as_secs()),
        ),
        _ => (StatusCode::OK, "ok\n".to_string()),
    }
}

async fn readyz(State(admin): State<Admin>) -> impl IntoResponse {
    if admin.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the initial watch sync\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get_status(admin: &Admin, path: &str) -> StatusCode {
        router(admin.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn ready_only_after_sync() {
        let admin = Admin {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            stuck_after: STUCK_AFTER,
        };
        assert_eq!(get_status(&admin, "/livez").await, StatusCode::OK);
        assert_eq!(
            get_status(&admin, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        admin.ready.store(true, Ordering::Relaxed);
        assert_eq!(get_status(&admin, "/readyz").await, StatusCode::OK);
        assert_eq!(get_status(&admin, "/metrics").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn not_live_while_a_reconcile_is_stuck() {
        let admin = Admin {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(true)),
            stuck_after: Duration::from_millis(50),
        };
        let pass = admin.metrics.reconcile("app");
        assert_eq!(get_status(&admin, "/livez").await, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            get_status(&admin, "/livez").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(pass);
        assert_eq!(get_status(&admin, "/livez").await, StatusCode::OK);
    }
}
