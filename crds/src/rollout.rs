//! How a workload moves from one revision of its pods to the next: the `strategy` part of
//! the spec, shared by every workload kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How pods of a new revision replace the old ones.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'Recreate' || !has(self.rollingUpdate)")
        .message("spec.strategy.rollingUpdate applies to types RollingUpdate and Canary: remove it, or change spec.strategy.type"),
    validation = Rule::new("(self.type == 'Canary') == has(self.canary)")
        .message("spec.strategy.canary is required with type Canary and allowed only with it"),
    validation = Rule::new("self.type == 'BlueGreen' || !has(self.blueGreen)")
        .message("spec.strategy.blueGreen applies only to type BlueGreen: remove it, or set spec.strategy.type to BlueGreen"),
    validation = Rule::new("self.type != 'BlueGreen' || !has(self.rollingUpdate)")
        .message("spec.strategy.rollingUpdate does not apply to type BlueGreen (the new revision starts beside the old one): remove it"),
)]
pub struct Strategy {
    /// `RollingUpdate` (the default): replace pods a few at a time, within `rollingUpdate`'s
    /// bounds. `Recreate`: remove every old pod, then start the new ones. `Canary`: move
    /// a share of the pods at a time, following `canary.steps`. `BlueGreen`: start a full
    /// set of new pods beside the old ones, then switch the Service to them at once.
    #[serde(rename = "type", default)]
    #[schemars(extend("maxLength" = 16))]
    pub type_: StrategyType,

    /// Bounds of a rolling update (and of each canary step's moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,

    /// The steps of a canary rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,

    /// When a blue-green rollout switches, and how long the old pods stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreen>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StrategyType {
    #[default]
    RollingUpdate,
    Recreate,
    Canary,
    BlueGreen,
}

/// A blue-green rollout: the new revision runs beside the old one, reachable through the
/// preview Service, until promoted; then the App's Service switches to it at once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreen {
    /// Switch on its own this long after every new pod is available. Without it, the
    /// switch waits for `drover.dev/promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.strategy.blueGreen.autoPromotionSeconds must be 0 or more"))]
    pub auto_promotion_seconds: Option<i32>,

    /// How long the old pods keep running after the switch, for connections in flight
    /// and an instant way back. Defaults to 30.
    #[serde(default = "default_scale_down_delay")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.strategy.blueGreen.scaleDownDelaySeconds must be 0 or more"))]
    pub scale_down_delay_seconds: i32,

    /// Also run a Service `<app>-preview` that selects only the new revision's pods.
    /// Defaults to true (when the App has ports).
    #[serde(default = "default_true")]
    pub preview_service: bool,
}

fn default_scale_down_delay() -> i32 {
    30
}

impl Default for BlueGreen {
    fn default() -> Self {
        Self {
            auto_promotion_seconds: None,
            scale_down_delay_seconds: default_scale_down_delay(),
            preview_service: true,
        }
    }
}

/// Where a blue-green rollout stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// The revision the App's Service selects.
    pub active: String,
    /// The revision being previewed (the update revision), while it is not active.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preview: String,
    /// When every pod of the preview first was available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_ready_at: Option<Time>,
    /// When the Service last switched; old pods go `scaleDownDelaySeconds` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<Time>,
    /// Aborted with `drover.dev/abort`: the preview's pods are removed until promoted or
    /// the template changes.
    #[serde(default)]
    pub aborted: bool,
}

/// A canary rollout: the new revision gets a share of the pods step by step; after the
/// last step (or `drover.dev/promote=full`) it gets all of them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// In order: `setWeight` (percent of `replicas` on the new revision, rounded up) or
    /// `pause` (for `durationSeconds`, or until `drover.dev/promote`).
    #[schemars(length(min = 1, max = 32))]
    pub steps: Vec<CanaryStep>,

    /// Also run a Service `<app>-canary` that selects only pods of the new revision.
    /// Defaults to true (when the App has ports).
    #[serde(default = "default_true")]
    pub service: bool,
}

fn default_true() -> bool {
    true
}

/// One canary step: exactly one of `setWeight` and `pause`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.setWeight) != has(self.pause)")
        .message("spec.strategy.canary.steps[]: give exactly one of setWeight and pause")
)]
pub struct CanaryStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("spec.strategy.canary.steps[].setWeight must be a percentage from 0 to 100"))]
    pub set_weight: Option<i32>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<CanaryPause>,
}

/// A pause: for a while, or (without `durationSeconds`) until promoted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryPause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.strategy.canary.steps[].pause.durationSeconds must be 1 or more"))]
    pub duration_seconds: Option<i32>,
}

/// How far a rolling update may stray from `replicas`, as a number of pods or a
/// percentage of `replicas`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.maxSurge) && has(self.maxUnavailable) && string(self.maxSurge) in ['0', '0%'] && string(self.maxUnavailable) in ['0', '0%'])")
        .message("spec.strategy.rollingUpdate: maxSurge and maxUnavailable may not both be 0, or the rollout could never move; raise one of them")
)]
pub struct RollingUpdate {
    /// Pods allowed above `replicas` while new ones start (rounded up). Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PODS_OR_PERCENT).message("spec.strategy.rollingUpdate.maxSurge must be a number of pods (0 or more) or a percentage like 25%"))]
    pub max_surge: Option<IntOrString>,

    /// Pods allowed below `replicas` available while old ones go (rounded down). Defaults
    /// to 0: the App never has fewer available pods than asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new(PODS_OR_PERCENT).message("spec.strategy.rollingUpdate.maxUnavailable must be a number of pods (0 or more) or a percentage like 25%"),
        validation = Rule::new("!string(self).matches('%$') || string(self).matches('^(100|[1-9]?[0-9])%$')").message("spec.strategy.rollingUpdate.maxUnavailable may be at most 100%"),
    )]
    pub max_unavailable: Option<IntOrString>,
}

/// A command annotation (`drover.dev/promote`, `drover.dev/abort`) the controller acted
/// on, recorded in the same status write as its effect: a controller that finds the
/// annotation still in place (it stopped before removing it) sees it was acted on, and
/// does not act twice.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CommandRecord {
    /// The annotation, e.g. `drover.dev/promote`.
    pub annotation: String,
    /// Its value, e.g. `step`.
    pub value: String,
    /// When it was set (its field manager's last write): the same command given again
    /// later is a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_at: Option<Time>,
    /// How many commands were acted on, this one included. The annotation
    /// `drover.dev/settled-command` takes it in the write that removes this command, so
    /// the same command given again within the same second (`setAt` has seconds) is told
    /// from this one still in place.
    #[serde(default)]
    pub number: i64,
}

/// Where a canary rollout stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The update revision these steps move to.
    pub revision: String,
    /// The index of the current step; the number of steps once all are done.
    pub step: i32,
    /// When the current step began (a timed pause counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// The share of `replicas` the new revision has now, in percent.
    pub weight: i32,
    /// Aborted with `drover.dev/abort`: every pod back on the stable revision until
    /// promoted or the template changes.
    #[serde(default)]
    pub aborted: bool,
}

/// An int-or-string field holding a count of pods (`2`, or `"2"`) or a percentage (`25%`).
const PODS_OR_PERCENT: &str = "string(self).matches('^[0-9]+%?$')";

impl RollingUpdate {
    pub const DEFAULT_MAX_SURGE: &str = "25%";
    pub const DEFAULT_MAX_UNAVAILABLE: i32 = 0;

    pub fn max_surge(&self) -> IntOrString {
        self.max_surge
            .clone()
            .unwrap_or_else(|| IntOrString::String(Self::DEFAULT_MAX_SURGE.into()))
    }

    pub fn max_unavailable(&self) -> IntOrString {
        self.max_unavailable
            .clone()
            .unwrap_or(IntOrString::Int(Self::DEFAULT_MAX_UNAVAILABLE))
    }
}
