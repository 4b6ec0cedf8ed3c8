//! What can fail in a workload controller. Each error has a category, used as the reason
//! of the Warning event it raises and as the label of the error metric. `kind` is the
//! workload's kind (`App`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use tracing::warn;

use super::Object;
use crate::runtime::backoff::Failures;
use crate::runtime::events::Publisher;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name} cannot be read ({reason}); fix its spec")]
    InvalidSpec {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("{kind} {name} has no UID yet")]
    MissingUid { kind: &'static str, name: String },
    #[error("creating pod {pod}: {source}")]
    PodCreate {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod}: {source}")]
    PodDelete {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying Service {name}: {source}")]
    ServiceApply {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting Service {name}: {source}")]
    ServiceDelete {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing PodDisruptionBudget {name}: {source}")]
    BudgetWrite {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing PersistentVolumeClaim {name}: {source}")]
    ClaimWrite {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing VolumeSnapshot {name}: {source}")]
    SnapshotWrite {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing ControllerRevision {name}: {source}")]
    RevisionWrite {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{action} {kind} {name}: {source}")]
    Config {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{kind} {name} is not drover's snapshot for revision {revision} ({problem}); \
         delete it, and drover makes the snapshot"
    )]
    ForeignSnapshot {
        kind: &'static str,
        name: String,
        revision: String,
        problem: &'static str,
    },
    #[error("removing annotation {key} from {kind} {name}: {source}")]
    Annotation {
        kind: &'static str,
        name: String,
        key: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("undoing the rollout of {kind} {name}: {source}")]
    Undo {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {kind} {name}: {source}")]
    StatusPatch {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// PascalCase, for Event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => "InvalidSpec",
            Error::MissingUid { .. } => "MissingUid",
            Error::PodCreate { .. } => "PodCreateFailed",
            Error::PodDelete { .. } => "PodDeleteFailed",
            Error::ServiceApply { .. } => "ServiceApplyFailed",
            Error::ServiceDelete { .. } => "ServiceDeleteFailed",
            Error::RevisionWrite { .. } => "RevisionWriteFailed",
            Error::BudgetWrite { .. } => "DisruptionBudgetWriteFailed",
            Error::ClaimWrite { .. } => "ClaimWriteFailed",
            Error::SnapshotWrite { .. } => "SnapshotWriteFailed",
            Error::Config { .. } => "ConfigSnapshotFailed",
            Error::ForeignSnapshot { .. } => "ConfigSnapshotForeign",
            Error::Undo { .. } => "UndoFailed",
            Error::Annotation { .. } => "AnnotationUpdateFailed",
            Error::StatusPatch { .. } => "StatusUpdateFailed",
        }
    }
}

/// The apiserver's answer to a write, sorted by what the controller does about it.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    /// 409 AlreadyExists on create.
    AlreadyExists,
    /// 404 on delete (already gone), or a write into a namespace being deleted (the
    /// workload goes with it).
    Gone,
    /// The apiserver refused the object itself (admission, quota, validation): retrying
    /// the same object will not help; the user must act. Carries its message.
    Refused(String),
    /// Anything else (throttling, timeouts, conflicts, server errors): retry later.
    Transient,
}

pub fn classify<T>(result: &Result<T, kube::Error>) -> WriteOutcome {
    match result {
        Ok(_) => WriteOutcome::Done,
        Err(kube::Error::Api(status)) if namespace_terminating(status) => WriteOutcome::Gone,
        Err(kube::Error::Api(status)) => match status.code {
            409 if status.reason == "AlreadyExists" => WriteOutcome::AlreadyExists,
            404 => WriteOutcome::Gone,
            400 | 403 | 422 => WriteOutcome::Refused(status.message.clone()),
            _ => WriteOutcome::Transient,
        },
        Err(_) => WriteOutcome::Transient,
    }
}

/// Whether an eviction was refused by a PodDisruptionBudget (429 with the
/// `DisruptionBudget` cause), not throttled by the apiserver (429 too, and transient).
pub fn blocked_by_budget<T>(result: &Result<T, kube::Error>) -> bool {
    let Err(kube::Error::Api(status)) = result else {
        return false;
    };
    status.code == 429
        && status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"))
}

fn namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}

/// When a failed pass is tried again: an invalid spec waits for a new one; anything else
/// backs off per workload (by UID).
pub fn retry(error: &Error, backoff: &Failures, uid: &str) -> Action {
    match error {
        // Only a new spec helps.
        Error::InvalidSpec { .. } => Action::await_change(),
        _ => Action::requeue(backoff.next(uid)),
    }
}

/// What a kube `Controller` of workloads `K` yields for each pass.
pub type PassResult<K> = Result<
    (ObjectRef<DeserializeGuard<K>>, Action),
    controller::Error<Error, kube::runtime::watcher::Error>,
>;

/// A failed pass is counted and becomes a Warning event on its workload, with the
/// error's category as the reason.
pub fn report_failure<K: Object>(events: &Arc<Publisher>, result: PassResult<K>) {
    let Err(e) = result else {
        return;
    };
    match e {
        controller::Error::ReconcilerFailed(err, workload) => {
            warn!(kind = K::KIND, name = %workload.name, namespace = ?workload.namespace, error = %err, "reconcile failed");
            let reference = ObjectReference {
                api_version: Some(K::api_version(&()).into()),
                kind: Some(K::kind(&()).into()),
                name: Some(workload.name.clone()),
                namespace: workload.namespace.clone(),
                ..ObjectReference::default()
            };
            // Published on a task of its own: the controller's stream (every watch and
            // every reconcile) is not polled while this function runs, so it must not wait
            // on the apiserver, least of all when the apiserver is what failed.
            let (events, category, message) = (events.clone(), err.category(), err.to_string());
            tokio::spawn(async move {
                events.failed(&reference, category, message).await;
            });
        }
        other => warn!(error = %other, "controller error"),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> Result<(), kube::Error> {
        let mut status = Status::failure(message, reason);
        status.code = code;
        Err(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn sorts_apiserver_answers() {
        assert_eq!(classify(&Ok::<(), kube::Error>(())), WriteOutcome::Done);
        assert_eq!(
            classify(&api_error(409, "AlreadyExists", "exists")),
            WriteOutcome::AlreadyExists
        );
        assert_eq!(
            classify(&api_error(409, "Conflict", "changed")),
            WriteOutcome::Transient
        );
        assert_eq!(
            classify(&api_error(404, "NotFound", "gone")),
            WriteOutcome::Gone
        );
        assert_eq!(
            classify(&api_error(403, "Forbidden", "violates PodSecurity")),
            WriteOutcome::Refused("violates PodSecurity".into())
        );
        assert_eq!(
            classify(&api_error(429, "TooManyRequests", "slow down")),
            WriteOutcome::Transient
        );
        assert_eq!(
            classify(&api_error(500, "InternalError", "etcd")),
            WriteOutcome::Transient
        );
    }

    #[test]
    fn only_a_budget_blocks_an_eviction() {
        let mut status = Status::failure(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            "TooManyRequests",
        );
        status.code = 429;
        // As the apiserver sends it.
        status.details = serde_json::from_value(serde_json::json!({
            "causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}],
        }))
        .unwrap();
        assert!(blocked_by_budget(&Err::<(), _>(kube::Error::Api(
            Box::new(status)
        ))));
        // The apiserver's own throttling (priority and fairness) is no budget.
        assert!(!blocked_by_budget(&api_error(
            429,
            "TooManyRequests",
            "too many requests, please try again later"
        )));
        assert!(!blocked_by_budget(&Ok::<(), kube::Error>(())));
    }

    #[test]
    fn writes_into_a_terminating_namespace_are_moot() {
        let mut status = Status::failure("unable to create new content", "Forbidden");
        status.code = 403;
        // As the apiserver sends it.
        status.details = serde_json::from_value(serde_json::json!({
            "name": "web-0", "kind": "pods",
            "causes": [{"reason": "NamespaceTerminating", "message": "namespace is being terminated", "field": "metadata.namespace"}],
        }))
        .unwrap();
        assert_eq!(
            classify(&Err::<(), _>(kube::Error::Api(Box::new(status)))),
            WriteOutcome::Gone
        );
    }
}
