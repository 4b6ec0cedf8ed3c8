//! The other workload kind's objects of the same name. An App and a StatefulApp of one
//! name in a namespace would take in each other's pods: both label theirs
//! `drover.dev/app=<name>`, which their Services, budgets and status selectors select.
//! The younger of the two acts on nothing (no pods, Services or budget) and says why in
//! its `NameConflict` condition until the other is gone.

use std::sync::Arc;

use drover_crds::names::label;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::core::{DeserializeGuard, ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::Object;
use crate::rollout::workload::Workload;
use crate::runtime::metrics::Metrics;
use crate::runtime::queue::Synced;
use crate::runtime::trim;
use crate::runtime::watch::{scoped, trigger};

/// The cache of the other kind `R`'s objects (metadata only).
pub struct Rivals<R: Object> {
    store: Store<PartialObjectMeta<R>>,
}

impl<R: Object> std::fmt::Debug for Rivals<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rivals")
            .field("kind", &<R as Workload>::KIND)
            .finish_non_exhaustive()
    }
}

impl<R: Object> Rivals<R> {
    /// Why `object` must wait: an `R` of its name in its namespace came first (at the
    /// same second, an App counts as first).
    pub fn younger<K: Object>(&self, object: &K) -> Option<String> {
        let (name, namespace) = (object.name_any(), object.namespace()?);
        let rival = self.store.get(&ObjectRef::new(&name).within(&namespace))?;
        let born = |m: &ObjectMeta| m.creation_timestamp.clone().map(|t| t.0);
        let (ours, theirs) = (born(object.meta()), born(&rival.metadata));
        let first = match (ours, theirs) {
            (Some(ours), Some(theirs)) if ours != theirs => theirs < ours,
            _ => <R as Workload>::KIND == "App",
        };
        first.then(|| {
            format!(
                "{rival_kind} {name} in this namespace has the same name and came first: the pods of both would carry {label}={name}, and each one's Service, budget and selector would take in the other's; this {kind} starts nothing until {rival_kind} {name} is gone (rename one of them)",
                rival_kind = <R as Workload>::KIND,
                kind = <K as Workload>::KIND,
                label = label::APP,
            )
        })
    }
}

/// Watches the other kind `R` (metadata only) into [`Rivals`], setting `bit` of `synced`
/// once listed, and its events (see [`woken`]).
#[allow(clippy::type_complexity)]
pub fn watch<R: Object>(
    client: &Client,
    namespace: Option<&str>,
    (synced, bit): (&Synced, u32),
    metrics: &Arc<Metrics>,
    controller: &'static str,
) -> (
    Rivals<R>,
    BoxStream<'static, Result<PartialObjectMeta<R>, watcher::Error>>,
) {
    let (store, writer) = reflector::store();
    let events = watcher(
        scoped::<PartialObjectMeta<R>>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(trim::meta)
    .reflect(writer)
    .inspect_ok(synced.on_init_done(bit))
    .touched_objects();
    (
        Rivals { store },
        trigger(events, metrics, controller, <R as Workload>::PLURAL).boxed(),
    )
}

/// The workload a rival's event wakes: the one of its name, which may stop or start
/// waiting.
pub fn woken<R: Object, K: Object>(
    rival: PartialObjectMeta<R>,
) -> Option<ObjectRef<DeserializeGuard<K>>> {
    let namespace = rival.namespace()?;
    Some(ObjectRef::new(&rival.name_any()).within(&namespace))
}

#[cfg(test)]
mod tests {
    use drover_crds::{App, StatefulApp};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use kube::core::PartialObjectMetaExt;

    use super::*;

    fn meta(name: &str, second: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            creation_timestamp: Some(Time(
                Timestamp::from_second(1_800_000_000 + second).unwrap(),
            )),
            ..ObjectMeta::default()
        }
    }

    fn app(name: &str, second: i64) -> App {
        let mut app: App = serde_json::from_value(serde_json::json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }))
        .unwrap();
        app.metadata = meta(name, second);
        app
    }

    /// Rivals holding StatefulApps `db` (created at 10) and `web` (at 20).
    fn statefulapps() -> Rivals<StatefulApp> {
        let (store, mut writer) = reflector::store();
        for (name, second) in [("db", 10), ("web", 20)] {
            let partial = meta(name, second).into_response_partial::<StatefulApp>();
            writer.apply_watcher_event(&watcher::Event::Apply(partial));
        }
        Rivals { store }
    }

    #[test]
    fn the_younger_of_two_workloads_of_one_name_waits() {
        let rivals = statefulapps();
        let why = rivals.younger(&app("db", 11)).unwrap();
        assert!(
            why.starts_with("StatefulApp db in this namespace has the same name and came first"),
            "{why}"
        );
        assert_eq!(rivals.younger(&app("web", 19)), None, "the App came first");
        assert_eq!(
            rivals.younger(&app("db", 10)),
            None,
            "the same second: the App"
        );
        assert_eq!(rivals.younger(&app("cache", 0)), None, "no rival");
        let mut elsewhere = app("db", 11);
        elsewhere.metadata.namespace = Some("other".into());
        assert_eq!(rivals.younger(&elsewhere), None, "another namespace");
    }
}
