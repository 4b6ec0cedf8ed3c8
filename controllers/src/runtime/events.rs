//! Events, published the same way by every component: notes cut to the API's limit, each
//! publication counted as a write, a failure to publish logged and never fatal. A failed
//! reconcile is reported here too, as a Warning whose reason is the error's category.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use super::metrics::Metrics;

/// The longest note an Event keeps.
const MAX_NOTE: usize = 1024;

pub struct Publisher {
    recorder: Recorder,
    metrics: Arc<Metrics>,
    /// The component, as in metrics (`app`, `scheduler`).
    component: &'static str,
    /// What the component was doing (`Reconcile`, `Scheduling`).
    action: &'static str,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(
        recorder: Recorder,
        metrics: Arc<Metrics>,
        component: &'static str,
        action: &'static str,
    ) -> Self {
        Publisher {
            recorder,
            metrics,
            component,
            action,
        }
    }

    /// Publishes an Event about `object`.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, MAX_NOTE)),
            action: self.action.into(),
            secondary: None,
        };
        match self.recorder.publish(&event, object).await {
            Ok(()) => self.metrics.write(self.component, "create", "events"),
            Err(e) => warn!(error = %e, reason, "could not publish an event"),
        }
    }

    /// Reports a failure about `object`: counted by `category`, and a Warning Event with
    /// the category as its reason.
    pub async fn failed(&self, object: &ObjectReference, category: &'static str, message: String) {
        self.metrics.error(self.component, category);
        self.publish(object, EventType::Warning, category, message)
            .await;
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Up to five names, then a count: `a, b, c, d, e and 2 more`.
pub fn list(names: &[&str]) -> String {
    let mut shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        shown.push_str(&format!(" and {} more", names.len() - 5));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("abc".into(), 10), "abc");
    }

    #[test]
    fn lists_are_short() {
        assert_eq!(list(&["a", "b"]), "a, b");
        assert_eq!(
            list(&["a", "b", "c", "d", "e", "f", "g"]),
            "a, b, c, d, e and 2 more"
        );
    }
}
