//! The App's Services, for `spec.ports`: one named after the App selecting all its pods,
//! and for a canary with `service: true` one named `<app>-canary` selecting the pods of
//! the update revision.

use std::collections::BTreeMap;

use drover_crds::App;
use drover_crds::names::label;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::engine::child_meta;
use crate::rollout::strategy::Routing;

/// Every Service name the App may own, with the Service wanted now (`None`: none), as
/// the strategy routes: the main one (selecting `routing.active` only, if set), a canary's
/// and a blue-green preview's.
pub fn desired(
    app: &App,
    update_revision: &str,
    routing: &Routing,
) -> Vec<(String, Option<Service>)> {
    let name = app.name_any();
    let only_update = |wanted: bool, suffix: &str| {
        let service_name = format!("{name}-{suffix}");
        let service = wanted
            .then(|| build(app, &service_name, Some(update_revision)))
            .flatten();
        (service_name, service)
    };
    vec![
        (name.clone(), build(app, &name, routing.active.as_deref())),
        only_update(routing.canary_service, "canary"),
        only_update(routing.preview_service, "preview"),
    ]
}

/// A Service `name` for the App's ports selecting its pods (of `revision` only, if
/// given), or `None` when it has no ports.
fn build(app: &App, name: &str, revision: Option<&str>) -> Option<Service> {
    if app.spec.ports.is_empty() {
        return None;
    }
    let mut selector = BTreeMap::from([(label::APP.to_string(), app.name_any())]);
    if let Some(revision) = revision {
        selector.insert(label::REVISION.into(), revision.into());
    }
    Some(Service {
        metadata: child_meta(app, name)?,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(
                app.spec
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.name.clone()),
                        port: p.port,
                        target_port: Some(
                            p.target_port.clone().unwrap_or(IntOrString::Int(p.port)),
                        ),
                        protocol: Some(p.protocol.as_str().into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// Whether the observed Service already has what `desired` asks for (so no write is
/// needed). Fields the apiserver fills in (clusterIP, ...) are ignored.
pub fn matches(observed: &Service, desired: &Service) -> bool {
    let (Some(o), Some(d)) = (&observed.spec, &desired.spec) else {
        return false;
    };
    // The fields drover sets on each port.
    let ports = |s: &ServiceSpec| -> Vec<ServicePort> {
        s.ports
            .iter()
            .flatten()
            .map(|p| ServicePort {
                name: p.name.clone(),
                port: p.port,
                target_port: p.target_port.clone(),
                protocol: p.protocol.clone(),
                ..ServicePort::default()
            })
            .collect()
    };
    o.selector == d.selector
        && ports(o) == ports(d)
        && observed.labels() == desired.labels()
        && observed.owner_references() == desired.owner_references()
}

#[cfg(test)]
mod tests {
    use drover_crds::AppSpec;
    use serde_json::json;

    use super::*;

    fn app(ports: serde_json::Value) -> App {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}, "ports": ports},
        }))
        .unwrap()
    }

    #[test]
    fn no_ports_no_service() {
        assert!(build(&app(json!([])), "web", None).is_none());
    }

    #[test]
    fn the_service_selects_the_app_and_maps_ports() {
        let svc = build(
            &app(json!([
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ])),
            "web",
            None,
        )
        .unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("web"));
        let spec = svc.spec.clone().unwrap();
        assert_eq!(spec.selector.unwrap()["drover.dev/app"], "web");
        let ports = spec.ports.unwrap();
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(8080)));
        assert_eq!(ports[1].target_port, Some(IntOrString::Int(53)));
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        assert!(matches(&svc, &svc));
        let other: AppSpec = app(json!([{"name": "http", "port": 81}])).spec;
        let mut changed = app(json!([]));
        changed.spec = other;
        assert!(!matches(&svc, &build(&changed, "web", None).unwrap()));
    }

    #[test]
    fn a_canary_gets_a_service_of_its_own_revision() {
        let canary = app(json!([{"name": "http", "port": 80}]));
        let routing = Routing {
            canary_service: true,
            ..Routing::default()
        };
        let services = desired(&canary, "web-r2", &routing);
        assert_eq!(services[1].0, "web-canary");
        let selector = services[1]
            .1
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .selector
            .clone();
        assert_eq!(selector.unwrap()["drover.dev/revision"], "web-r2");
        // Not a canary: the name is listed (to remove a leftover) with no Service.
        let plain = app(json!([{"name": "http", "port": 80}]));
        assert!(
            desired(&plain, "web-r2", &Routing::default())[1]
                .1
                .is_none()
        );
    }

    #[test]
    fn a_blue_green_app_selects_its_active_revision_and_previews_the_new_one() {
        let app = app(json!([{"name": "http", "port": 80}]));
        let routing = Routing {
            active: Some("web-r1".into()),
            preview_service: true,
            ..Routing::default()
        };
        let services = desired(&app, "web-r2", &routing);
        let selector = |i: usize| {
            services[i]
                .1
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .selector
                .clone()
                .unwrap()
        };
        assert_eq!(selector(0)["drover.dev/revision"], "web-r1");
        assert_eq!(services[2].0, "web-preview");
        assert_eq!(selector(2)["drover.dev/revision"], "web-r2");
        assert!(services[1].1.is_none(), "no canary Service");
    }
}
