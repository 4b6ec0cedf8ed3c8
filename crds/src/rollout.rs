//! How a workload moves from one revision of its pods to the next: the `strategy` part of
//! the spec, shared by every workload kind.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How pods of a new revision replace the old ones.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'RollingUpdate' || !has(self.rollingUpdate)")
        .message("spec.strategy.rollingUpdate applies only to type RollingUpdate: remove it, or set spec.strategy.type to RollingUpdate")
)]
pub struct Strategy {
    /// `RollingUpdate` (the default): replace pods a few at a time, within `rollingUpdate`'s
    /// bounds. `Recreate`: remove every old pod, then start the new ones.
    #[serde(rename = "type", default)]
    #[schemars(extend("maxLength" = 16))]
    pub type_: StrategyType,

    /// Bounds of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StrategyType {
    #[default]
    RollingUpdate,
    Recreate,
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
    #[x_kube(validation = Rule::new(PODS_OR_PERCENT).message("spec.strategy.rollingUpdate.maxUnavailable must be a number of pods (0 or more) or a percentage like 25%"))]
    pub max_unavailable: Option<IntOrString>,
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
