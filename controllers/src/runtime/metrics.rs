//! Prometheus metrics of the controllers, served on the admin port's `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub controller: &'static str,
    /// create, delete, apply, patch_status
    pub verb: &'static str,
    pub resource: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabel, Histogram>,
    queue_depth: Family<ControllerLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    active: Family<ControllerLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    writes: Family<WriteLabels, Counter<u64, AtomicU64>>,
    /// Reconciles under way, by a number of their own, with when each started: `/livez`
    /// fails when one has run far longer than any pass should.
    running: Mutex<BTreeMap<u64, Instant>>,
    next: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("drover");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by category",
            errors.clone(),
        );
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        let queue_depth = Family::default();
        registry.register(
            "queue_depth",
            "Objects with a change waiting to be reconciled",
            queue_depth.clone(),
        );
        let active = Family::default();
        registry.register("active_reconciles", "Reconciles under way", active.clone());
        let writes = Family::default();
        registry.register("api_writes", "Writes sent to the apiserver", writes.clone());
        Self {
            registry,
            reconciles,
            errors,
            duration,
            queue_depth,
            active,
            writes,
            running: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a reconcile and times it until the returned guard is dropped.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .inc();
        let started = Instant::now();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        crate::runtime::lock(&self.running).insert(id, started);
        self.active
            .get_or_create(&ControllerLabel { controller })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            started,
            id,
        }
    }

    /// How long the longest reconcile under way has run.
    pub fn longest_reconcile(&self) -> Option<Duration> {
        let running = crate::runtime::lock(&self.running);
        running.values().min().map(Instant::elapsed)
    }

    pub fn error(&self, controller: &'static str, category: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller,
                category,
            })
            .inc();
    }

    pub fn set_queue_depth(&self, controller: &'static str, depth: usize) {
        self.queue_depth
            .get_or_create(&ControllerLabel { controller })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn write(&self, controller: &'static str, verb: &'static str, resource: &'static str) {
        self.writes
            .get_or_create(&WriteLabels {
                controller,
                verb,
                resource,
            })
            .inc();
    }
}

/// Records a reconcile's duration when dropped.
#[derive(Debug)]
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    started: Instant,
    id: u64,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        crate::runtime::lock(&self.metrics.running).remove(&self.id);
        let label = ControllerLabel {
            controller: self.controller,
        };
        self.metrics.active.get_or_create(&label).dec();
        self.metrics
            .duration
            .get_or_create(&ControllerLabel {
                controller: self.controller,
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_reconciles_errors_durations_queue_depth_and_writes() {
        let m = Metrics::default();
        let under_way = m.reconcile("app");
        assert!(
            m.encode()
                .contains("drover_active_reconciles{controller=\"app\"} 1")
        );
        drop(under_way);
        m.error("app", "PodDelete");
        m.set_queue_depth("app", 3);
        m.write("app", "create", "pods");
        let text = m.encode();
        for line in [
            "drover_reconciles_total{controller=\"app\"} 1",
            "drover_reconcile_errors_total{controller=\"app\",category=\"PodDelete\"} 1",
            "drover_reconcile_duration_seconds_count{controller=\"app\"} 1",
            "drover_queue_depth{controller=\"app\"} 3",
            "drover_active_reconciles{controller=\"app\"} 0",
            "drover_api_writes_total{controller=\"app\",verb=\"create\",resource=\"pods\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
