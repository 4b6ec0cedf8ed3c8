//! `App`: a stateless workload — N copies of a pod template, kept running, behind a
//! Service of the same name.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rollout::{BlueGreenStatus, CanaryStatus, CommandRecord, Strategy};

/// The longest App name: pods (`<app>-<slot>`) and Services (`<app>`, later
/// `<app>-canary` and `<app>-preview`) are named after it and must stay valid names.
pub const MAX_NAME_LENGTH: usize = 50;
/// At most this many ports per App.
pub const MAX_PORTS: usize = 32;

/// An App runs `replicas` copies of a pod template, replaces pods that fail, are deleted or
/// are lost with their node, and exposes them through a Service named after the App.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "drover.dev",
    version = "v1alpha1",
    kind = "App",
    namespaced,
    cel,
    status = "AppStatus",
    shortname = "dapp",
    category = "drover",
    doc = "A stateless workload: replicas of a pod template, kept running, behind a Service.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas", description = "Pods asked for"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas", description = "Pods passing their readiness probes"),
    printcolumn(name = "Up-to-date", type_ = "integer", json_path = ".status.updatedReplicas", description = "Pods of the current template"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.availableReplicas", description = "Pods ready for at least minReadySeconds"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision", description = "Number of the revision pods are moving to"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 50")
        .message("metadata.name must be a DNS label of at most 50 characters that starts with a letter (the App's Service and pods are named after it)")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.progressDeadlineSeconds) || !has(self.minReadySeconds) || self.progressDeadlineSeconds > self.minReadySeconds")
        .message("spec.progressDeadlineSeconds must be greater than spec.minReadySeconds: a new pod counts as available only after minReadySeconds, so a shorter deadline fails every rollout"),
    validation = Rule::new("!has(self.placement) || !self.placement.binPack || !has(self.template.spec) || !has(self.template.spec.schedulerName)")
        .message("spec.placement.binPack chooses the pods' scheduler: leave spec.template.spec.schedulerName out, or set binPack to false")
)]
pub struct AppSpec {
    /// How many pods to run, from 0 to 100,000 (`MAX_REPLICAS`). Defaults to 1.
    #[serde(default = "default_replicas")]
    #[x_kube(
        validation = Rule::new("self >= 0").message("spec.replicas must be 0 or more"),
        validation = Rule::new("self <= 100000").message("spec.replicas may be at most 100000"),
    )]
    pub replicas: i32,

    /// The pods to run, as in a Deployment. drover adds its own labels (`drover.dev/...`).
    #[x_kube(
        validation = Rule::new("has(self.spec) && size(self.spec.containers) > 0")
            .message("spec.template.spec.containers must list at least one container"),
        validation = Rule::new("!has(self.spec) || !has(self.spec.restartPolicy) || self.spec.restartPolicy == 'Always'")
            .message("spec.template.spec.restartPolicy must be Always (or left out): an App keeps its pods running"),
        validation = Rule::new("!has(self.metadata) || !has(self.metadata.labels) || self.metadata.labels.all(k, !k.startsWith('drover.dev/'))")
            .message("spec.template.metadata.labels must not set drover.dev/ labels (app, slot, revision): drover sets those itself")
    )]
    pub template: PodTemplateSpec,

    /// Ports of the Service named after the App, which sends traffic to its ready pods.
    /// Without ports there is no Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("self.all(p, self.exists_one(q, q.name == p.name))")
            .message("spec.ports: every port needs its own name"),
        validation = Rule::new("self.all(p, self.exists_one(q, q.port == p.port && q.protocol == p.protocol))")
            .message("spec.ports: a port number may be used once per protocol")
    )]
    pub ports: Vec<AppPort>,

    /// A new pod counts as available once it has been ready for this long. Defaults to 0.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.minReadySeconds must be 0 or more"))]
    pub min_ready_seconds: i32,

    /// How a new template replaces running pods: RollingUpdate (the default) or Recreate.
    #[serde(default)]
    pub strategy: Strategy,

    /// Old revisions kept (as ControllerRevisions) to roll back to. Defaults to 10.
    #[serde(default = "default_revision_history_limit")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.revisionHistoryLimit must be 0 or more"))]
    pub revision_history_limit: i32,

    /// Seconds a rollout may go without progress (a pod of the new revision created or
    /// becoming available, an old one removed) before `Progressing` turns False with
    /// reason ProgressDeadlineExceeded. Defaults to 600.
    #[serde(default = "default_progress_deadline_seconds")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.progressDeadlineSeconds must be 1 or more"))]
    pub progress_deadline_seconds: i32,

    /// When the progress deadline passes, go back to the last revision that rolled out
    /// completely (template and config), as `drover.dev/undo` would. Defaults to false.
    #[serde(default)]
    pub auto_rollback: bool,

    /// What an undo (`drover.dev/undo`, or autoRollback) does with the config of the
    /// revision it returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,

    /// The most pods that may be going away at once for voluntary reasons — drover's own
    /// rollouts and scale-in, and evictions such as `kubectl drain`, which a
    /// PodDisruptionBudget `<app>` drover keeps subjects to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<Disruption>,

    /// Holds the rollout: template and config changes wait (no new revision, no pod
    /// replaced) until it is false again; scaling goes on. Defaults to false.
    #[serde(default)]
    pub paused: bool,

    /// How the pods are placed on nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// How an undo treats config. The pods always go back to the revision's own immutable
/// snapshots of its ConfigMaps and Secrets, and stay on them until a source is edited
/// again; Secrets are never written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Undo {
    /// Also write the revision's contents back into the ConfigMaps it references, so the
    /// sources hold what runs again. Defaults to false.
    #[serde(default)]
    pub restore_config_maps: bool,
}

/// Placement of an App's pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Schedule the pods with drover's scheduler, which packs them onto the fullest
    /// nodes that fit (fewer, fuller nodes); scale-in then empties the least-used nodes
    /// first. Applies to pods started after it is set. Defaults to false.
    #[serde(default)]
    pub bin_pack: bool,
}

/// A disruption budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// Pods (or a percentage of `replicas`, rounded down but at least 1) that may be
    /// unavailable or going away at once.
    #[x_kube(validation = Rule::new("string(self).matches('^[0-9]+%?$') && !(string(self) in ['0', '0%'])").message("spec.disruption.maxUnavailable must be a number of pods (1 or more) or a percentage like 25%"))]
    pub max_unavailable: IntOrString,
}

fn default_revision_history_limit() -> i32 {
    10
}

fn default_progress_deadline_seconds() -> i32 {
    600
}

/// The most pods an App may ask for: a bound on what one App can make the controller do
/// (kube-scheduler is tested to 150,000 pods in a whole cluster). The CRD's rule on
/// `spec.replicas` says the same number.
pub const MAX_REPLICAS: i32 = 100_000;

fn default_replicas() -> i32 {
    1
}

/// A port of the App's Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppPort {
    /// The port's name in the Service: a lowercase DNS label of at most 15 characters
    /// (for example `http`).
    #[schemars(length(max = 15))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self) <= 15")
            .message("spec.ports[].name must be a lowercase DNS label of at most 15 characters, like http")
    )]
    pub name: String,

    /// The port the Service listens on.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("spec.ports[].port must be between 1 and 65535"))]
    pub port: i32,

    /// The containers' port: a number, or the name of a container port. Defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,

    /// TCP (the default), UDP or SCTP.
    #[serde(default)]
    #[schemars(extend("maxLength" = 4))]
    pub protocol: Protocol,
}

/// A transport protocol of a Service port.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What drover observes of an App.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods that exist and are not terminating or finished.
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probes.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods ready for at least `minReadySeconds`.
    #[serde(default)]
    pub available_replicas: i32,
    /// Pods of the update revision (the current template).
    #[serde(default)]
    pub updated_replicas: i32,
    /// The ControllerRevision every pod ran when the last rollout completed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    /// The ControllerRevision of the current template, which pods are moving to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
    /// The number of the update revision (`revision` of its ControllerRevision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Where a canary rollout stands (strategy Canary only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Where a blue-green rollout stands (strategy BlueGreen only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// The last command annotation acted on (see `CommandRecord`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<CommandRecord>,
    /// When the pods last moved towards the spec; the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<Time>,
    /// The label selector of the App's pods, for the scale subresource and autoscalers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Available, Progressing, ReplicaFailure, Healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::rollout::{RollingUpdate, StrategyType};
    use crate::testing::{assert_names, with};

    fn app(spec: Value) -> App {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1",
            "kind": "App",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn valid_spec() -> Value {
        json!({
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "web", "image": "registry.local/drover/sample:1"}]}},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        })
    }

    /// The messages of the rules `spec` breaks, as the apiserver would report them.
    fn broken_rules(spec: Value) -> Vec<String> {
        match app(spec).validate_cel() {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn assert_rejected(spec: Value, field: &str) {
        assert_names(&broken_rules(spec), field);
    }

    #[test]
    fn a_plain_app_is_valid() {
        assert_eq!(broken_rules(valid_spec()), Vec::<String>::new());
    }

    #[test]
    fn replicas_default_to_one_and_may_not_be_negative() {
        let mut spec = valid_spec();
        spec.as_object_mut().unwrap().remove("replicas");
        assert_eq!(app(spec).spec.replicas, 1);
        assert_rejected(with(valid_spec(), "/replicas", json!(-1)), "spec.replicas");
        assert!(broken_rules(with(valid_spec(), "/replicas", json!(0))).is_empty());
        let max = json!(MAX_REPLICAS);
        assert!(broken_rules(with(valid_spec(), "/replicas", max)).is_empty());
        let above = json!(MAX_REPLICAS + 1);
        assert_rejected(with(valid_spec(), "/replicas", above), "spec.replicas");
        let huge = json!(2_000_000_000);
        assert_rejected(with(valid_spec(), "/replicas", huge), "spec.replicas");
    }

    #[test]
    fn a_template_needs_a_container() {
        assert_rejected(
            with(valid_spec(), "/template/spec/containers", json!([])),
            "spec.template.spec.containers",
        );
        assert_rejected(
            with(valid_spec(), "/template", json!({})),
            "spec.template.spec.containers",
        );
    }

    #[test]
    fn pods_must_restart_always() {
        assert_rejected(
            with(valid_spec(), "/template/spec/restartPolicy", json!("Never")),
            "spec.template.spec.restartPolicy",
        );
        assert!(
            broken_rules(with(
                valid_spec(),
                "/template/spec/restartPolicy",
                json!("Always")
            ))
            .is_empty()
        );
    }

    #[test]
    fn drover_labels_are_reserved() {
        let spec = with(
            valid_spec(),
            "/template/metadata",
            json!({"labels": {"drover.dev/app": "other"}}),
        );
        assert_rejected(spec, "spec.template.metadata.labels");
        let spec = with(
            valid_spec(),
            "/template/metadata",
            json!({"labels": {"drover.dev/revision": "x"}}),
        );
        assert_rejected(spec, "spec.template.metadata.labels");
        let spec = with(
            valid_spec(),
            "/template/metadata",
            json!({"labels": {"tier": "web"}}),
        );
        assert!(broken_rules(spec).is_empty());
    }

    #[test]
    fn port_names_are_unique() {
        let ports = json!([{"name": "http", "port": 80}, {"name": "http", "port": 81}]);
        assert_rejected(
            with(valid_spec(), "/ports", ports),
            "every port needs its own name",
        );
    }

    #[test]
    fn a_port_number_is_used_once_per_protocol() {
        let same = json!([{"name": "a", "port": 53}, {"name": "b", "port": 53}]);
        assert_rejected(with(valid_spec(), "/ports", same), "once per protocol");
        let tcp_and_udp =
            json!([{"name": "a", "port": 53}, {"name": "b", "port": 53, "protocol": "UDP"}]);
        assert!(broken_rules(with(valid_spec(), "/ports", tcp_and_udp)).is_empty());
    }

    #[test]
    fn ports_are_checked() {
        for port in [0, 65536] {
            let ports = json!([{"name": "http", "port": port}]);
            assert_rejected(with(valid_spec(), "/ports", ports), "spec.ports[].port");
        }
        for name in ["HTTP", "-http", "a-name-longer-than-15"] {
            let ports = json!([{"name": name, "port": 80}]);
            assert_rejected(with(valid_spec(), "/ports", ports), "spec.ports[].name");
        }
    }

    #[test]
    fn min_ready_seconds_may_not_be_negative() {
        assert_rejected(
            with(valid_spec(), "/minReadySeconds", json!(-5)),
            "spec.minReadySeconds",
        );
    }

    #[test]
    fn the_progress_deadline_outlasts_min_ready() {
        let spec = with(valid_spec(), "/minReadySeconds", json!(30));
        let at = |deadline: i32| with(spec.clone(), "/progressDeadlineSeconds", json!(deadline));
        assert_rejected(at(30), "must be greater than spec.minReadySeconds");
        assert_rejected(at(10), "must be greater than spec.minReadySeconds");
        assert!(broken_rules(at(31)).is_empty());
        // The default deadline (600 s) against a longer minReadySeconds.
        let long = with(valid_spec(), "/minReadySeconds", json!(900));
        assert_rejected(long, "spec.progressDeadlineSeconds");
    }

    #[test]
    fn app_names_must_suit_services_and_pods() {
        for name in ["1web", "web_app", &"a".repeat(MAX_NAME_LENGTH + 1)] {
            let mut a = app(valid_spec());
            a.metadata.name = Some(name.to_string());
            let broken = a
                .validate_cel()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(broken.contains("metadata.name"), "{name}: {broken}");
        }
        let mut a = app(valid_spec());
        a.metadata.name = Some("a".repeat(MAX_NAME_LENGTH));
        assert!(a.validate_cel().is_ok());
    }

    #[test]
    fn strategy_defaults_to_a_rolling_update() {
        let a = app(valid_spec());
        assert_eq!(a.spec.strategy.type_, StrategyType::RollingUpdate);
        assert_eq!(a.spec.revision_history_limit, 10);
        let bounds = RollingUpdate::default();
        assert_eq!(bounds.max_surge(), IntOrString::String("25%".into()));
        assert_eq!(bounds.max_unavailable(), IntOrString::Int(0));
    }

    #[test]
    fn rolling_update_bounds_are_checked() {
        let strategy = |bounds: Value| json!({"type": "RollingUpdate", "rollingUpdate": bounds});
        for good in [
            json!({"maxSurge": 1, "maxUnavailable": 0}),
            json!({"maxSurge": "0%", "maxUnavailable": "25%"}),
            json!({"maxSurge": "100%"}),
            json!({"maxSurge": "300%", "maxUnavailable": "100%"}),
            json!({"maxUnavailable": 500}),
            json!({}),
        ] {
            let spec = with(valid_spec(), "/strategy", strategy(good.clone()));
            assert_eq!(broken_rules(spec), Vec::<String>::new(), "{good}");
        }
        for (bad, field) in [
            (json!({"maxSurge": -1}), "maxSurge"),
            (json!({"maxSurge": "lots"}), "maxSurge"),
            (json!({"maxUnavailable": "5 pods"}), "maxUnavailable"),
            (
                json!({"maxUnavailable": "101%"}),
                "maxUnavailable may be at most 100%",
            ),
            (
                json!({"maxSurge": 0, "maxUnavailable": "0%"}),
                "may not both be 0",
            ),
        ] {
            assert_rejected(with(valid_spec(), "/strategy", strategy(bad)), field);
        }
        let recreate = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
        assert_rejected(
            with(valid_spec(), "/strategy", recreate),
            "spec.strategy.rollingUpdate applies to types RollingUpdate and Canary",
        );
        assert_rejected(
            with(valid_spec(), "/progressDeadlineSeconds", json!(0)),
            "spec.progressDeadlineSeconds",
        );
    }

    #[test]
    fn canary_and_blue_green_settings_are_checked() {
        let canary = |steps: Value| json!({"type": "Canary", "canary": {"steps": steps}});
        let good =
            canary(json!([{"setWeight": 20}, {"pause": {}}, {"pause": {"durationSeconds": 5}}]));
        assert_eq!(
            broken_rules(with(valid_spec(), "/strategy", good)),
            Vec::<String>::new()
        );
        for (bad, field) in [
            (
                canary(json!([{"setWeight": 120}])),
                "setWeight must be a percentage",
            ),
            (
                canary(json!([{"setWeight": 20, "pause": {}}])),
                "exactly one of setWeight and pause",
            ),
            (canary(json!([{}])), "exactly one of setWeight and pause"),
            (
                canary(json!([{"pause": {"durationSeconds": 0}}])),
                "durationSeconds must be 1 or more",
            ),
            (
                json!({"type": "Canary"}),
                "spec.strategy.canary is required with type Canary",
            ),
            (
                json!({"type": "RollingUpdate", "canary": {"steps": [{"setWeight": 5}]}}),
                "spec.strategy.canary is required with type Canary and allowed only with it",
            ),
            (
                json!({"type": "RollingUpdate", "blueGreen": {}}),
                "spec.strategy.blueGreen applies only to type BlueGreen",
            ),
            (
                json!({"type": "BlueGreen", "rollingUpdate": {"maxSurge": 1}}),
                "does not apply to type BlueGreen",
            ),
            (
                json!({"type": "BlueGreen", "blueGreen": {"scaleDownDelaySeconds": -1}}),
                "scaleDownDelaySeconds must be 0 or more",
            ),
        ] {
            assert_rejected(with(valid_spec(), "/strategy", bad), field);
        }
        let blue_green = json!({"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 0}});
        assert_eq!(
            broken_rules(with(valid_spec(), "/strategy", blue_green)),
            Vec::<String>::new()
        );
        assert_rejected(
            with(valid_spec(), "/revisionHistoryLimit", json!(-1)),
            "spec.revisionHistoryLimit",
        );
    }

    #[test]
    fn the_crd_has_scale_status_columns_and_a_category() {
        let crd = serde_json::to_value(App::crd()).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(
            version["subresources"]["scale"]["specReplicasPath"],
            ".spec.replicas"
        );
        assert_eq!(
            version["subresources"]["scale"]["labelSelectorPath"],
            ".status.selector"
        );
        assert!(version["subresources"]["status"].is_object());
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            [
                "Desired",
                "Ready",
                "Up-to-date",
                "Available",
                "Revision",
                "Age"
            ]
        );
        assert_eq!(crd["spec"]["names"]["categories"], json!(["drover"]));
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["dapp"]));
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["ports"]["maxItems"], json!(MAX_PORTS));
        let conditions = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            ["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}
