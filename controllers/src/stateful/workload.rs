//! The StatefulApp as the rollout engine sees it. Its pods move by the ordinal plan
//! ([`super::plan`]), not by a strategy: to the engine it is a plain rolling update, so
//! revisions, config, undo, commands and the status's rollout fields are the App's.

use std::sync::LazyLock;

use drover_crds::{StatefulApp, Strategy};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::rollout::workload::{Recorded, Spec, Workload, count, seconds};

/// A StatefulApp's strategy, as the engine sees it: a rolling update.
static ROLLING: LazyLock<Strategy> = LazyLock::new(Strategy::default);

impl Workload for StatefulApp {
    const KIND: &'static str = "StatefulApp";
    const PLURAL: &'static str = "statefulapps";

    fn rollout_spec(&self) -> Spec<'_> {
        let spec = &self.spec;
        Spec {
            template: &spec.template,
            strategy: &ROLLING,
            replicas: count(spec.replicas),
            paused: spec.paused,
            min_ready: seconds(spec.min_ready_seconds),
            progress_deadline: seconds(spec.progress_deadline_seconds),
            history_limit: count(spec.revision_history_limit) as usize,
            auto_rollback: spec.auto_rollback,
            restore_config_maps: spec.undo.as_ref().is_some_and(|u| u.restore_config_maps),
        }
    }

    fn recorded(&self) -> Recorded<'_> {
        self.status
            .as_ref()
            .map(|s| Recorded {
                current_revision: &s.current_revision,
                update_revision: &s.update_revision,
                canary: None,
                blue_green: None,
                last_command: s.last_command.as_ref(),
            })
            .unwrap_or_default()
    }

    fn template_mut(&mut self) -> &mut PodTemplateSpec {
        &mut self.spec.template
    }

    fn clear_status(&mut self) {
        self.status = None;
    }
}
