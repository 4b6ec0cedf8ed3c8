//! A StatefulApp's Services: the headless governing Service `<name>`, which gives each
//! pod its DNS name `<pod>.<name>.<namespace>.svc` (ready or not, so members can find
//! each other while they start), and with `spec.ports` a client Service `<name>-client`
//! that sends traffic to the ready pods.

use std::collections::BTreeMap;

use drover_crds::StatefulApp;
use drover_crds::names::label;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::engine::child_meta;

/// Every Service name the StatefulApp may own, with the Service wanted now.
pub fn desired(app: &StatefulApp) -> Vec<(String, Option<Service>)> {
    let name = app.name_any();
    let client = format!("{name}-client");
    let client_service = (!app.spec.ports.is_empty())
        .then(|| build(app, &client, false))
        .flatten();
    vec![
        (name.clone(), build(app, &name, true)),
        (client, client_service),
    ]
}

fn build(app: &StatefulApp, name: &str, headless: bool) -> Option<Service> {
    let selector = BTreeMap::from([(label::APP.to_string(), app.name_any())]);
    let ports: Vec<ServicePort> = app
        .spec
        .ports
        .iter()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            port: p.port,
            target_port: Some(p.target_port.clone().unwrap_or(IntOrString::Int(p.port))),
            protocol: Some(p.protocol.as_str().into()),
            ..ServicePort::default()
        })
        .collect();
    Some(Service {
        metadata: child_meta(app, name)?,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: (!ports.is_empty()).then_some(ports),
            cluster_ip: headless.then(|| "None".into()),
            publish_not_ready_addresses: headless.then_some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// Whether the observed Service already has what `desired` asks for (the App's
/// comparison, and the headless fields).
pub fn matches(observed: &Service, desired: &Service) -> bool {
    let headless = |s: &Service| {
        s.spec.as_ref().map(|s| {
            (
                s.cluster_ip.as_deref() == Some("None"),
                s.publish_not_ready_addresses.unwrap_or(false),
            )
        })
    };
    crate::app::service::matches(observed, desired) && headless(observed) == headless(desired)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app(ports: serde_json::Value) -> StatefulApp {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "StatefulApp",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u"},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}, "ports": ports},
        }))
        .unwrap()
    }

    #[test]
    fn the_headless_service_always_exists_and_the_client_one_with_ports() {
        let without = desired(&app(json!([])));
        assert_eq!(without[0].0, "db");
        let headless = without[0].1.as_ref().unwrap().spec.clone().unwrap();
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        assert_eq!(headless.publish_not_ready_addresses, Some(true));
        assert_eq!(headless.ports, None);
        assert_eq!(without[1], ("db-client".to_string(), None));

        let with = desired(&app(json!([{"name": "client", "port": 2379}])));
        let client = with[1].1.as_ref().unwrap().spec.clone().unwrap();
        assert_eq!(client.cluster_ip, None);
        assert_eq!(client.publish_not_ready_addresses, None);
        assert_eq!(client.ports.unwrap()[0].port, 2379);
        assert!(matches(
            with[0].1.as_ref().unwrap(),
            with[0].1.as_ref().unwrap()
        ));
        assert!(!matches(
            with[0].1.as_ref().unwrap(),
            with[1].1.as_ref().unwrap()
        ));
    }
}
