//! `StatefulApp`: a stateful workload — pods with a stable identity (`<name>-<ordinal>`, a
//! DNS name through a headless Service) and storage of their own (one claim per ordinal
//! and claim template) that follows the ordinal wherever its pod goes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::app::{AppPort, AppStatus, Disruption, Undo};
use crate::rollout::CommandRecord;

/// The longest StatefulApp name: pods are `<name>-<ordinal>` and their claims
/// `<claim>-<name>-<ordinal>`, and a pod's name is also its host name (a DNS label).
pub const MAX_NAME_LENGTH: usize = 50;
/// At most this many claim templates per StatefulApp.
pub const MAX_CLAIM_TEMPLATES: usize = 16;
/// The most replicas a StatefulApp may ask for (each may own claims). The CRD's rule on
/// `spec.replicas` says the same number.
pub const MAX_STATEFUL_REPLICAS: i32 = 10_000;

/// A StatefulApp runs `replicas` pods named `<name>-<ordinal>`, each with its own
/// claims, its own DNS name `<name>-<ordinal>.<name>.<namespace>.svc`, and at most one
/// pod per ordinal at any moment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "drover.dev",
    version = "v1alpha1",
    kind = "StatefulApp",
    namespaced,
    cel,
    status = "StatefulAppStatus",
    shortname = "dsapp",
    category = "drover",
    doc = "A stateful workload: pods with stable names, DNS names and storage of their own.",
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
        .message("metadata.name must be a DNS label of at most 50 characters that starts with a letter (the pods, their host names and claims are named after it)")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.progressDeadlineSeconds) || !has(self.minReadySeconds) || self.progressDeadlineSeconds > self.minReadySeconds")
        .message("spec.progressDeadlineSeconds must be greater than spec.minReadySeconds: a new pod counts as available only after minReadySeconds, so a shorter deadline fails every rollout"),
    validation = Rule::new("!has(oldSelf.volumeClaimTemplates) || !has(self.volumeClaimTemplates) || self.volumeClaimTemplates.all(t, oldSelf.volumeClaimTemplates.all(o, o.metadata.name != t.metadata.name || quantity(t.spec.resources.requests.storage).compareTo(quantity(o.spec.resources.requests.storage)) >= 0))")
        .message("spec.volumeClaimTemplates[].spec.resources.requests.storage may not be lowered: a claim cannot shrink (raise it, or keep it)"),
    validation = Rule::new("!has(self.volumeSnapshots) || !self.volumeSnapshots.beforeUpdate || (has(self.volumeClaimTemplates) && size(self.volumeClaimTemplates) > 0)")
        .message("spec.volumeSnapshots.beforeUpdate needs spec.volumeClaimTemplates: there are no claims to snapshot"),
)]
pub struct StatefulAppSpec {
    /// How many pods to run, from 0 to 10,000 (`MAX_STATEFUL_REPLICAS`). Defaults to 1.
    #[serde(default = "default_replicas")]
    #[x_kube(
        validation = Rule::new("self >= 0").message("spec.replicas must be 0 or more"),
        validation = Rule::new("self <= 10000").message("spec.replicas may be at most 10000"),
    )]
    pub replicas: i32,

    /// The pods to run. drover adds its own labels (`drover.dev/...`), the host name and
    /// subdomain, and a volume for each claim template.
    #[x_kube(
        validation = Rule::new("has(self.spec) && size(self.spec.containers) > 0")
            .message("spec.template.spec.containers must list at least one container"),
        validation = Rule::new("!has(self.spec) || !has(self.spec.restartPolicy) || self.spec.restartPolicy == 'Always'")
            .message("spec.template.spec.restartPolicy must be Always (or left out): a StatefulApp keeps its pods running"),
        validation = Rule::new("!has(self.metadata) || !has(self.metadata.labels) || self.metadata.labels.all(k, !k.startsWith('drover.dev/'))")
            .message("spec.template.metadata.labels must not set drover.dev/ labels (app, ordinal, revision): drover sets those itself"),
        validation = Rule::new("!has(self.spec) || (!has(self.spec.hostname) && !has(self.spec.subdomain))")
            .message("spec.template.spec.hostname and subdomain are set by drover (each pod is <name>-<ordinal>.<name>): leave them out")
    )]
    pub template: PodTemplateSpec,

    /// Claims each pod gets of its own, named `<claim>-<name>-<ordinal>`: made before the
    /// pod, kept across its replacements and rollouts, mounted where the template's
    /// containers mount a volume of the claim's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(
        validation = Rule::new("self.all(c, self.exists_one(d, d.metadata.name == c.metadata.name))")
            .message("spec.volumeClaimTemplates: every claim template needs its own metadata.name")
    )]
    pub volume_claim_templates: Vec<ClaimTemplate>,

    /// Ports of the client Service `<name>-client`, which sends traffic to the ready pods.
    /// The headless Service `<name>`, which gives each pod its DNS name, exists either way
    /// and carries these ports too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("self.all(p, self.exists_one(q, q.name == p.name))")
            .message("spec.ports: every port needs its own name"),
        validation = Rule::new("self.all(p, self.exists_one(q, q.port == p.port && q.protocol == p.protocol))")
            .message("spec.ports: a port number may be used once per protocol")
    )]
    pub ports: Vec<AppPort>,

    /// Where the ordinals start (the first pod is `<name>-<start>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinals: Option<Ordinals>,

    /// `OrderedReady` (the default): start pods one at a time in ordinal order, each once
    /// the previous one is Ready, and remove them highest first, one at a time.
    /// `Parallel`: start and remove them all at once. Rollouts follow `updateStrategy`
    /// either way.
    #[serde(default)]
    #[schemars(extend("maxLength" = 16))]
    pub pod_management_policy: PodManagementPolicy,

    /// How a new template replaces running pods.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,

    /// What happens to the claims when the StatefulApp is deleted or scaled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_retention_policy: Option<RetentionPolicy>,

    /// Snapshots of the claims taken by drover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots: Option<VolumeSnapshots>,

    /// A new pod counts as available once it has been ready for this long. Defaults to 0.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.minReadySeconds must be 0 or more"))]
    pub min_ready_seconds: i32,

    /// Old revisions kept (as ControllerRevisions) to roll back to. Defaults to 10.
    #[serde(default = "default_revision_history_limit")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.revisionHistoryLimit must be 0 or more"))]
    pub revision_history_limit: i32,

    /// Seconds a rollout may go without progress before `Progressing` turns False with
    /// reason ProgressDeadlineExceeded. Defaults to 600.
    #[serde(default = "default_progress_deadline_seconds")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.progressDeadlineSeconds must be 1 or more"))]
    pub progress_deadline_seconds: i32,

    /// When the progress deadline passes, go back to the last revision that rolled out
    /// completely (template and config), as `drover.dev/undo` would. Defaults to false.
    #[serde(default)]
    pub auto_rollback: bool,

    /// What an undo does with the config of the revision it returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,

    /// The most pods that may be going away at once for voluntary reasons (rollouts,
    /// scale-in, evictions), kept by a PodDisruptionBudget `<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<Disruption>,

    /// Holds the rollout: template and config changes wait until it is false again;
    /// scaling goes on. Defaults to false.
    #[serde(default)]
    pub paused: bool,
}

/// A claim each pod gets, as a StatefulSet's `volumeClaimTemplates` entry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTemplate {
    pub metadata: ClaimMetadata,
    pub spec: ClaimSpec,
}

/// The parts of a PersistentVolumeClaim's spec a claim template sets (each field as in
/// a PersistentVolumeClaim; bounded, so the API server can afford the rules on them).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSpec {
    /// ReadWriteOnce (the default), ReadOnlyMany, ReadWriteMany, ReadWriteOncePod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub access_modes: Vec<AccessMode>,
    /// The StorageClass (the cluster's default class when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// The VolumeAttributesClass, where the cluster has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub volume_attributes_class_name: Option<String>,
    /// Filesystem (the default) or Block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub volume_mode: Option<String>,
    pub resources: ClaimResources,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimResources {
    pub requests: ClaimRequests,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequests {
    /// How large each pod's claim is, as a quantity (`1Gi`). Raising it expands every
    /// existing claim of the template in place (where the StorageClass allows
    /// expansion); lowering it is refused.
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))")
            .message("spec.volumeClaimTemplates[].spec.resources.requests.storage must be a size, like 1Gi")
    )]
    pub storage: String,
}

/// The name and metadata of a claim template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMetadata {
    /// The claim's name within the pod (its volume's name); each pod's claim is
    /// `<name>-<statefulapp>-<ordinal>`.
    #[schemars(length(max = 63))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self) <= 63")
            .message("spec.volumeClaimTemplates[].metadata.name must be a lowercase DNS label, like data")
    )]
    pub name: String,
    /// Labels the claims get (beside drover's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: BTreeMap<String, String>,
    /// Annotations the claims get.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: BTreeMap<String, String>,
}

/// Where ordinals start.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ordinals {
    /// The first ordinal. Defaults to 0.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.ordinals.start must be 0 or more"))]
    pub start: i32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodManagementPolicy {
    #[default]
    OrderedReady,
    Parallel,
}

/// How pods of a new revision replace the old ones.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'RollingUpdate' || !has(self.rollingUpdate)")
        .message("spec.updateStrategy.rollingUpdate applies to type RollingUpdate only: remove it, or change spec.updateStrategy.type"),
)]
pub struct UpdateStrategy {
    /// `RollingUpdate` (the default): replace pods highest ordinal first, within
    /// `rollingUpdate`'s bounds. `OnDelete`: replace a pod only when it is deleted.
    #[serde(rename = "type", default)]
    #[schemars(extend("maxLength" = 16))]
    pub type_: UpdateStrategyType,

    /// Bounds of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<StatefulRollingUpdate>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateStrategyType {
    #[default]
    RollingUpdate,
    OnDelete,
}

/// Bounds of a StatefulApp's rolling update.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatefulRollingUpdate {
    /// Ordinals below this keep the old revision (a staged rollout: lower it to go on).
    /// Defaults to 0: every pod is updated.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.updateStrategy.rollingUpdate.partition must be 0 or more"))]
    pub partition: i32,

    /// Pods (or a percentage of `replicas`, rounded down but at least 1) that may be
    /// down at once for the update. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("string(self).matches('^[0-9]+%?$') && !(string(self) in ['0', '0%'])")
            .message("spec.updateStrategy.rollingUpdate.maxUnavailable must be a number of pods (1 or more) or a percentage like 25%"),
        validation = Rule::new("!string(self).matches('%$') || string(self).matches('^(100|[1-9]?[0-9])%$')")
            .message("spec.updateStrategy.rollingUpdate.maxUnavailable may be at most 100%"),
    )]
    pub max_unavailable: Option<IntOrString>,
}

impl StatefulRollingUpdate {
    pub fn max_unavailable(&self) -> IntOrString {
        self.max_unavailable.clone().unwrap_or(IntOrString::Int(1))
    }
}

/// What happens to the claims of pods that go for good.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// When the StatefulApp is deleted: `Retain` (the default) keeps every claim,
    /// `Delete` deletes them with it.
    #[serde(default)]
    #[schemars(extend("maxLength" = 8))]
    pub when_deleted: Retention,
    /// When it is scaled in: `Retain` (the default) keeps the removed ordinals' claims
    /// (and a scale-out uses them again), `Delete` deletes them.
    #[serde(default)]
    #[schemars(extend("maxLength" = 8))]
    pub when_scaled: Retention,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retention {
    #[default]
    Retain,
    Delete,
}

/// Snapshots drover takes of the claims.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshots {
    /// Before a pod is replaced by a new revision, snapshot each of its claims and wait
    /// until the snapshots are ready to use; `drover.dev/restore-data=true` beside an undo
    /// restores them. Defaults to false.
    #[serde(default)]
    pub before_update: bool,
    /// The VolumeSnapshotClass to use (the default class when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

fn default_revision_history_limit() -> i32 {
    10
}

fn default_progress_deadline_seconds() -> i32 {
    600
}

/// What drover observes of a StatefulApp.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatefulAppStatus {
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
    /// The number of the update revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The last command annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<CommandRecord>,
    /// When the pods last moved towards the spec; the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<Time>,
    /// Each claim template's claims: how many have the size it asks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub claims: Vec<ClaimsStatus>,
    /// The label selector of the pods, for the scale subresource and autoscalers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Available, Progressing, Healthy, and those naming what needs a hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl StatefulAppStatus {
    /// The status fields every workload kind shares, as an App's status holds them: what
    /// the shared status computation reads and writes.
    pub fn rollout(&self) -> AppStatus {
        AppStatus {
            observed_generation: self.observed_generation,
            replicas: self.replicas,
            ready_replicas: self.ready_replicas,
            available_replicas: self.available_replicas,
            updated_replicas: self.updated_replicas,
            current_revision: self.current_revision.clone(),
            update_revision: self.update_revision.clone(),
            revision: self.revision,
            canary: None,
            blue_green: None,
            last_command: self.last_command.clone(),
            last_progress_time: self.last_progress_time.clone(),
            selector: self.selector.clone(),
            conditions: self.conditions.clone(),
        }
    }

    /// The status from the shared fields and the claims'. A StatefulApp has no canary or
    /// blue-green rollout: those fields of `rollout` are not kept.
    pub fn new(rollout: AppStatus, claims: Vec<ClaimsStatus>) -> Self {
        StatefulAppStatus {
            observed_generation: rollout.observed_generation,
            replicas: rollout.replicas,
            ready_replicas: rollout.ready_replicas,
            available_replicas: rollout.available_replicas,
            updated_replicas: rollout.updated_replicas,
            current_revision: rollout.current_revision,
            update_revision: rollout.update_revision,
            revision: rollout.revision,
            last_command: rollout.last_command,
            last_progress_time: rollout.last_progress_time,
            claims,
            selector: rollout.selector,
            conditions: rollout.conditions,
        }
    }
}

/// Where the claims of one template stand.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsStatus {
    /// The claim template's name.
    pub name: String,
    /// The size the template asks for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requested: String,
    /// Claims of the template that exist.
    #[serde(default)]
    pub claims: i32,
    /// Claims whose capacity is the size asked for.
    #[serde(default)]
    pub resized: i32,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{assert_names, with};

    fn stateful(spec: Value) -> StatefulApp {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1",
            "kind": "StatefulApp",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn valid_spec() -> Value {
        json!({
            "replicas": 3,
            "template": {"spec": {"containers": [{
                "name": "db",
                "image": "registry.local/drover/sample:1",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }]}},
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
            "ports": [{"name": "client", "port": 2379}],
        })
    }

    fn broken_rules(spec: Value) -> Vec<String> {
        match stateful(spec).validate_cel() {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn assert_rejected(spec: Value, field: &str) {
        assert_names(&broken_rules(spec), field);
    }

    #[test]
    fn a_plain_stateful_app_is_valid_and_defaults_like_a_statefulset() {
        assert_eq!(broken_rules(valid_spec()), Vec::<String>::new());
        let s = stateful(valid_spec());
        assert_eq!(
            s.spec.pod_management_policy,
            PodManagementPolicy::OrderedReady
        );
        assert_eq!(
            s.spec.update_strategy.type_,
            UpdateStrategyType::RollingUpdate
        );
        assert_eq!(
            StatefulRollingUpdate::default().max_unavailable(),
            IntOrString::Int(1)
        );
        assert_eq!(s.spec.revision_history_limit, 10);
        assert_eq!(s.spec.progress_deadline_seconds, 600);
        let policy = RetentionPolicy::default();
        assert_eq!(
            (policy.when_deleted, policy.when_scaled),
            (Retention::Retain, Retention::Retain)
        );
    }

    #[test]
    fn replicas_are_bounded() {
        assert_rejected(with(valid_spec(), "/replicas", json!(-1)), "spec.replicas");
        let max = json!(MAX_STATEFUL_REPLICAS);
        assert!(broken_rules(with(valid_spec(), "/replicas", max)).is_empty());
        let above = json!(MAX_STATEFUL_REPLICAS + 1);
        assert_rejected(with(valid_spec(), "/replicas", above), "spec.replicas");
    }

    #[test]
    fn claim_templates_are_checked() {
        let twice = json!([
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}},
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "2Gi"}}}},
        ]);
        assert_rejected(
            with(valid_spec(), "/volumeClaimTemplates", twice),
            "its own metadata.name",
        );
        let sizeless = json!([{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "0"}}}}]);
        assert_rejected(
            with(valid_spec(), "/volumeClaimTemplates", sizeless),
            "resources.requests.storage must be a size",
        );
        let badly_named = json!([{"metadata": {"name": "Data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]);
        assert_rejected(
            with(valid_spec(), "/volumeClaimTemplates", badly_named),
            "spec.volumeClaimTemplates[].metadata.name",
        );
    }

    #[test]
    fn the_pod_identity_is_drovers() {
        for field in ["hostname", "subdomain"] {
            let spec = with(valid_spec(), &format!("/template/spec/{field}"), json!("x"));
            assert_rejected(spec, "hostname and subdomain are set by drover");
        }
        let labels = with(
            valid_spec(),
            "/template/metadata",
            json!({"labels": {"drover.dev/ordinal": "1"}}),
        );
        assert_rejected(labels, "spec.template.metadata.labels");
    }

    #[test]
    fn update_strategy_and_ordinals_are_checked() {
        let strategy = |s: Value| with(valid_spec(), "/updateStrategy", s);
        assert!(
            broken_rules(strategy(
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2, "maxUnavailable": "50%"}})
            ))
            .is_empty()
        );
        assert!(broken_rules(strategy(json!({"type": "OnDelete"}))).is_empty());
        for (bad, field) in [
            (
                json!({"type": "OnDelete", "rollingUpdate": {"partition": 1}}),
                "applies to type RollingUpdate only",
            ),
            (
                json!({"rollingUpdate": {"partition": -1}}),
                "partition must be 0 or more",
            ),
            (
                json!({"rollingUpdate": {"maxUnavailable": 0}}),
                "maxUnavailable must be a number of pods (1 or more)",
            ),
            (
                json!({"rollingUpdate": {"maxUnavailable": "120%"}}),
                "maxUnavailable may be at most 100%",
            ),
        ] {
            assert_rejected(strategy(bad), field);
        }
        assert_rejected(
            with(valid_spec(), "/ordinals", json!({"start": -1})),
            "spec.ordinals.start",
        );
    }

    #[test]
    fn snapshots_before_an_update_need_claims() {
        let snapshots = json!({"beforeUpdate": true, "className": "drover-csi"});
        assert!(broken_rules(with(valid_spec(), "/volumeSnapshots", snapshots.clone())).is_empty());
        let no_claims = with(valid_spec(), "/volumeClaimTemplates", json!([]));
        assert_rejected(
            with(no_claims, "/volumeSnapshots", snapshots),
            "beforeUpdate needs spec.volumeClaimTemplates",
        );
    }

    #[test]
    fn the_crd_has_scale_status_columns_and_a_category() {
        let crd = serde_json::to_value(StatefulApp::crd()).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(
            version["subresources"]["scale"]["specReplicasPath"],
            ".spec.replicas"
        );
        assert!(version["subresources"]["status"].is_object());
        assert_eq!(crd["spec"]["names"]["categories"], json!(["drover"]));
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["dsapp"]));
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(
            spec["volumeClaimTemplates"]["maxItems"],
            json!(MAX_CLAIM_TEMPLATES)
        );
    }
}
