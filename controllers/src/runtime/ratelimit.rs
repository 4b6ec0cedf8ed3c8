//! A client-side token bucket for requests to the apiserver, like client-go's QPS/burst:
//! benchmarks give drover and the stock controllers the same limits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// `qps` requests per second on average, bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: burst,
                burst,
                qps: qps.max(0.001),
                last: Instant::now(),
            })),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    burst: f64,
    qps: f64,
    last: Instant,
}

impl Bucket {
    /// Takes a token, going into debt if there is none; returns how long to wait for it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.qps;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            wait: None,
            reserved: false,
        }
    }
}

/// The rate-limited service: `poll_ready` takes a token (waiting for it), `call` spends it.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
    wait: Option<Pin<Box<Sleep>>>,
    reserved: bool,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.reserved {
            let now = Instant::now();
            let wait = match self.bucket.lock() {
                Ok(mut bucket) => bucket.reserve(now),
                Err(poisoned) => poisoned.into_inner().reserve(now),
            };
            self.reserved = true;
            if !wait.is_zero() {
                self.wait = Some(Box::pin(tokio::time::sleep_until(now + wait)));
            }
        }
        if let Some(sleep) = self.wait.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.reserved = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: 3.0,
            burst: 3.0,
            qps: 10.0,
            last: start,
        };
        for _ in 0..3 {
            assert_eq!(b.reserve(start), Duration::ZERO);
        }
        assert_eq!(b.reserve(start), Duration::from_millis(100));
        assert_eq!(b.reserve(start), Duration::from_millis(200));
        // A second later the debt is paid and eight tokens refilled (capped at burst).
        let later = start + Duration::from_secs(1);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert!(b.tokens <= 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_burst_wait() {
        use tower::ServiceExt;
        let layer = RateLimitLayer::new(5.0, 2);
        let mut svc = layer.layer(tower::service_fn(|_: ()| async {
            Ok::<_, ()>(Instant::now())
        }));
        let start = Instant::now();
        let mut times = vec![];
        for _ in 0..4 {
            times.push(svc.ready().await.unwrap().call(()).await.unwrap() - start);
        }
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[1], Duration::ZERO);
        assert_eq!(times[2], Duration::from_millis(200));
        assert_eq!(times[3], Duration::from_millis(400));
    }
}
