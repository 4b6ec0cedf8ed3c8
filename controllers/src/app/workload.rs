//! The App as the rollout engine sees it.

use drover_crds::App;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::rollout::workload::{Recorded, Spec, Workload, count, seconds};

impl Workload for App {
    const KIND: &'static str = "App";
    const PLURAL: &'static str = "apps";

    fn rollout_spec(&self) -> Spec<'_> {
        let spec = &self.spec;
        Spec {
            template: &spec.template,
            strategy: &spec.strategy,
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
                canary: s.canary.as_ref(),
                blue_green: s.blue_green.as_ref(),
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
