//! A leader's writes stop the moment its lease may have lapsed, by its own clock.
//!
//! Stopping the process when the lease is lost is not enough: a process frozen (SIGSTOP,
//! a VM paused, a long GC-like stall) past its lease wakes with every task due at once,
//! and a reconcile may send a write before the lease loop notices the deadline passed —
//! while another replica already leads. Every write of the workload's client therefore
//! passes this fence, which is open only until the renew deadline after the last renewal
//! *sent* (not answered) succeeded; a successor cannot take the lease before the full
//! lease duration, which is longer.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use super::lock;

/// Whether this process may write now.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    /// Open until then; `None` for a process that does not elect a leader.
    until: Option<Arc<Mutex<Instant>>>,
}

impl Fence {
    /// Always open: the process writes without a lease.
    pub fn open() -> Self {
        Self::default()
    }

    /// Closed until [`Fence::open_until`] is called.
    pub fn closed() -> Self {
        Self {
            until: Some(Arc::new(Mutex::new(Instant::now()))),
        }
    }

    pub fn open_until(&self, until: Instant) {
        if let Some(at) = &self.until {
            *lock(at) = until;
        }
    }

    pub fn close(&self) {
        self.open_until(Instant::now());
    }

    pub fn is_open(&self) -> bool {
        self.until
            .as_ref()
            .is_none_or(|at| Instant::now() < *lock(at))
    }
}

/// The error a fenced write fails with.
#[derive(Debug, thiserror::Error)]
#[error("not writing: this process's leader lease may have lapsed")]
pub struct Fenced;

#[derive(Debug, Clone)]
pub struct FenceLayer(pub Fence);

impl<S> Layer<S> for FenceLayer {
    type Service = FencedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FencedService {
            inner,
            fence: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FencedService<S> {
    inner: S,
    fence: Fence,
}

type Answer<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

impl<S, B> Service<Request<B>> for FencedService<S>
where
    S: Service<Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Answer<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let reads = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if !reads && !self.fence.is_open() {
            return Box::pin(std::future::ready(Err(Fenced.into())));
        }
        let answer = self.inner.call(request);
        Box::pin(async move { answer.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Clone)]
    struct Echo;

    impl Service<Request<()>> for Echo {
        type Response = ();
        type Error = BoxError;
        type Future = std::future::Ready<Result<(), BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::ready(Ok(()))
        }
    }

    fn request(method: Method) -> Request<()> {
        Request::builder().method(method).body(()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn writes_pass_only_while_the_fence_is_open_and_reads_always() {
        let fence = Fence::closed();
        let mut service = FenceLayer(fence.clone()).layer(Echo);
        assert!(service.call(request(Method::GET)).await.is_ok());
        assert!(service.call(request(Method::PATCH)).await.is_err());
        fence.open_until(Instant::now() + Duration::from_secs(10));
        assert!(service.call(request(Method::POST)).await.is_ok());
        // Frozen past the deadline: the first write after waking is refused.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(service.call(request(Method::DELETE)).await.is_err());
        assert!(service.call(request(Method::GET)).await.is_ok());
        let mut unfenced = FenceLayer(Fence::open()).layer(Echo);
        assert!(unfenced.call(request(Method::PUT)).await.is_ok());
    }
}
