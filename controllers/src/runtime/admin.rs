//! The admin endpoints: `/livez`, which fails while a reconcile is stuck (so the kubelet
//! restarts the process and the standby takes over), and `/readyz`, which turns ready
//! only once every watch has delivered its initial list, on the health address the
//! kubelet probes; `/metrics` (Prometheus) on an address of its own, only where
//! configured (a loopback address keeps it inside the pod, e.g. for an authenticating
//! proxy; none serves no metrics).

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

fn health_router() -> Router<Admin> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
}

fn metrics_router() -> Router<Admin> {
    Router::new().route("/metrics", get(metrics))
}

/// Serves the health endpoints on `health`, and the metrics on `metrics` when given
/// (both on one listener when it is the same address). Ends only if a listener fails.
pub async fn serve(
    health: SocketAddr,
    metrics: Option<SocketAddr>,
    admin: Admin,
) -> std::io::Result<()> {
    match metrics {
        Some(metrics) if metrics == health => {
            let router = health_router().merge(metrics_router());
            listen(health, "health and metrics", router.with_state(admin)).await
        }
        Some(metrics) => {
            let served = tokio::try_join!(
                listen(health, "health", health_router().with_state(admin.clone())),
                listen(metrics, "metrics", metrics_router().with_state(admin)),
            );
            served.map(|_| ())
        }
        None => listen(health, "health", health_router().with_state(admin)).await,
    }
}

async fn listen(addr: SocketAddr, what: &str, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving {what}");
    axum::serve(listener, router).await
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

    fn router(admin: Admin) -> Router {
        health_router().merge(metrics_router()).with_state(admin)
    }

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

    /// A free port on the loopback.
    fn free_port() -> SocketAddr {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    }

    async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        answer.split(' ').nth(1)?.parse().ok()
    }

    #[tokio::test]
    async fn metrics_are_served_only_where_configured() {
        let admin = Admin {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(true)),
            stuck_after: STUCK_AFTER,
        };
        let (health, metrics) = (free_port(), free_port());
        tokio::spawn(serve(health, Some(metrics), admin.clone()));
        let alone = free_port();
        tokio::spawn(serve(alone, None, admin.clone()));
        let shared = free_port();
        tokio::spawn(serve(shared, Some(shared), admin));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(http_status(health, "/livez").await, Some(200));
        assert_eq!(http_status(health, "/metrics").await, Some(404));
        assert_eq!(http_status(metrics, "/metrics").await, Some(200));
        assert_eq!(http_status(metrics, "/readyz").await, Some(404));
        assert_eq!(http_status(alone, "/readyz").await, Some(200));
        assert_eq!(http_status(alone, "/metrics").await, Some(404));
        assert_eq!(http_status(shared, "/metrics").await, Some(200));
        assert_eq!(http_status(shared, "/livez").await, Some(200));
    }
}
