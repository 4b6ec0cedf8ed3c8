//! Watches that outlive their errors.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Client, Resource};
use tracing::warn;

use super::metrics::Metrics;

/// A watch's events for as long as the process runs. An error (410 Gone, a reset
/// connection, an apiserver restarting) is logged and counted as a `watch` error of
/// `component`; the watcher, backing off, then lists again and the caches it feeds catch
/// up. Ending at the first error instead would leave those caches frozen, or the process
/// gone, while nothing else is wrong.
pub fn endure<S, T>(
    events: S,
    metrics: Arc<Metrics>,
    component: &'static str,
    what: &'static str,
) -> impl Stream<Item = T>
where
    S: Stream<Item = Result<T, watcher::Error>>,
{
    events.filter_map(move |event| {
        let event = match event {
            Ok(event) => Some(event),
            Err(error) => {
                // A 410 (the resource version is older than the apiserver keeps) makes the
                // watcher list everything again: told apart, as it costs a full list.
                let category = match &error {
                    watcher::Error::WatchError(status) if status.code == 410 => "watch_expired",
                    _ => "watch",
                };
                metrics.error(component, category);
                warn!(%error, watch = what, "watch interrupted; listing again after a backoff");
                None
            }
        };
        futures::future::ready(event)
    })
}

/// A watch's objects for a kube `Controller`, its errors logged and counted (as
/// `controller`'s) instead. No error may reach the Controller: it puts all its trigger
/// streams together behind one backoff, so a single watch's error (a cut connection, a
/// 410) would stop every watch for a growing while — stores frozen, workloads
/// unreconciled, and more watches expiring meanwhile. Each watch backs off on its own.
pub fn trigger<K, S>(
    events: S,
    metrics: &Arc<Metrics>,
    controller: &'static str,
    what: &'static str,
) -> impl Stream<Item = Result<K, watcher::Error>> + use<K, S>
where
    S: Stream<Item = Result<K, watcher::Error>>,
{
    endure(events, metrics.clone(), controller, what).map(Ok)
}

/// An Api over a controller's scope: one namespace, or all of them.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
