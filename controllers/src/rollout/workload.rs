//! What the rollout engine needs of a workload, whatever its kind: the parts of its spec
//! that say how pods move between revisions, and what its last status recorded. An `App`
//! and a `StatefulApp` implement [`Workload`] and share the engine whole.

use std::time::Duration;

use drover_crds::{BlueGreenStatus, CanaryStatus, CommandRecord, Strategy};
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The rollout-relevant spec of a workload, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub template: &'a PodTemplateSpec,
    pub strategy: &'a Strategy,
    pub replicas: u32,
    pub paused: bool,
    /// How long a pod must be ready to count as available.
    pub min_ready: Duration,
    pub progress_deadline: Duration,
    /// Old revisions kept beyond those pods still run.
    pub history_limit: usize,
    /// Return to the last complete revision when the progress deadline passes.
    pub auto_rollback: bool,
    /// An undo also writes the revision's ConfigMap contents back into the sources.
    pub restore_config_maps: bool,
}

/// What the workload's status recorded at the last pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recorded<'a> {
    /// What every pod ran when the last rollout completed.
    pub current_revision: &'a str,
    pub update_revision: &'a str,
    pub canary: Option<&'a CanaryStatus>,
    pub blue_green: Option<&'a BlueGreenStatus>,
    /// The last command annotation acted on.
    pub last_command: Option<&'a CommandRecord>,
}

/// A workload kind the rollout engine can drive.
pub trait Workload {
    /// The kind, as in messages (`App`).
    const KIND: &'static str;
    /// The resource's plural, as in metrics (`apps`).
    const PLURAL: &'static str;

    fn rollout_spec(&self) -> Spec<'_>;
    fn recorded(&self) -> Recorded<'_>;
    /// The template, for an undo to put an old revision's back.
    fn template_mut(&mut self) -> &mut PodTemplateSpec;
    /// Drops the status (a spec write must not carry it).
    fn clear_status(&mut self);
}

/// A count from the API (`i32`, validated non-negative) as the engine counts.
pub fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// Seconds from the API as a duration (negative: zero).
pub fn seconds(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}
