//! Mistakes in a workload that its admission cannot refuse (the pod template's schema is
//! Kubernetes' own, too deep for CEL's cost budget) and that the apiserver reports later
//! without naming what the user wrote: a quantity that does not parse, a Service target
//! port that no container declares.

use drover_crds::AppPort;
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::scheduler::quantity;

/// What the apiserver says of a pod with a quantity it cannot parse, without naming it.
const QUANTITY_REFUSAL: &str = "quantities must match";

/// A pod create the apiserver refused as `message`, said so that it names the container
/// and resource at fault when the refusal is an unparsable quantity.
pub fn refusal(template: &PodTemplateSpec, message: &str) -> String {
    if message.contains(QUANTITY_REFUSAL)
        && let Some(named) = bad_quantity(template)
    {
        return named;
    }
    message.to_string()
}

/// The first resource quantity of the template that does not parse, named by container
/// and resource.
fn bad_quantity(template: &PodTemplateSpec) -> Option<String> {
    let spec = template.spec.as_ref()?;
    let lists = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_slice()),
    ];
    lists.into_iter().find_map(|(list, containers)| {
        containers.iter().find_map(|c| {
            bad_resource(c).map(|(kind, resource, value)| {
                format!(
                    "spec.template.spec.{list}[{}].resources.{kind}.{resource}: {value:?} is not \
                     a quantity; write it like 500m, 2, 128Mi or 1Gi",
                    c.name
                )
            })
        })
    })
}

fn bad_resource(c: &Container) -> Option<(&'static str, &str, &str)> {
    let resources = c.resources.as_ref()?;
    [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ]
    .into_iter()
    .find_map(|(kind, values)| {
        values.as_ref()?.iter().find_map(|(resource, value)| {
            // A negative quantity parses (validation refuses it by name).
            let magnitude = value.0.trim().trim_start_matches('-');
            quantity::milli(magnitude).is_none().then_some((
                kind,
                resource.as_str(),
                value.0.as_str(),
            ))
        })
    })
}

/// The Service ports whose `targetPort` is a name that no container of the template
/// declares: the Service would have no endpoint for them and refuse every connection.
pub fn undeclared_ports(ports: &[AppPort], template: &PodTemplateSpec) -> Vec<String> {
    let declared = |name: &str| {
        template.spec.as_ref().is_some_and(|spec| {
            spec.containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .any(|p| p.name.as_deref() == Some(name))
        })
    };
    ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.target_port {
            Some(IntOrString::String(target)) if !declared(target) => Some(format!(
                "spec.ports[{i}] ({}): targetPort {target:?} is not the name of a port in \
                 spec.template.spec.containers[].ports; declare a container port named \
                 {target:?} or give the port number",
                p.name
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use drover_crds::Protocol;
    use serde_json::json;

    use super::*;

    fn template(containers: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(json!({"spec": {"containers": containers}})).unwrap()
    }

    #[test]
    fn an_unparsable_quantity_is_named_by_container_and_resource() {
        let t = template(json!([
            {"name": "ok", "image": "i", "resources": {"requests": {"cpu": "500m", "memory": "-1Gi"}}},
            {"name": "web", "image": "i", "resources": {"limits": {"memory": "12 Gb"}}},
        ]));
        let refused = "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression";
        assert_eq!(
            refusal(&t, refused),
            "spec.template.spec.containers[web].resources.limits.memory: \"12 Gb\" is not a \
             quantity; write it like 500m, 2, 128Mi or 1Gi"
        );
        assert_eq!(
            refusal(&t, "exceeded quota"),
            "exceeded quota",
            "other refusals are the apiserver's own words"
        );
        let fine = template(
            json!([{"name": "ok", "image": "i", "resources": {"requests": {"cpu": "1.5"}}}]),
        );
        assert_eq!(
            refusal(&fine, refused),
            refused,
            "nothing to name: the apiserver's words"
        );
    }

    #[test]
    fn a_target_port_name_no_container_declares_is_reported() {
        let t = template(json!([
            {"name": "web", "image": "i", "ports": [{"name": "http", "containerPort": 8080}]},
        ]));
        let port = |name: &str, target: Option<IntOrString>| AppPort {
            name: name.into(),
            port: 80,
            target_port: target,
            protocol: Protocol::Tcp,
        };
        let ports = [
            port("a", None),
            port("b", Some(IntOrString::Int(9000))),
            port("c", Some(IntOrString::String("http".into()))),
            port("d", Some(IntOrString::String("htpp".into()))),
        ];
        let found = undeclared_ports(&ports, &t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.ports[3] (d): targetPort \"htpp\""),
            "{}",
            found[0]
        );
    }
}
