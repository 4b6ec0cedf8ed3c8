//! Every name drover puts on objects: API group, labels, annotations, field managers,
//! condition types and reasons. Nothing else in the project spells these out.

/// The API group of drover's resources.
pub const GROUP: &str = "drover.dev";
pub const VERSION: &str = "v1alpha1";

/// Labels drover sets on the objects it creates.
pub mod label {
    /// The App a pod belongs to (and the Service's selector).
    pub const APP: &str = "drover.dev/app";
    /// The slot a pod fills; its name ends in the same number.
    pub const SLOT: &str = "drover.dev/slot";
    /// The ordinal of a StatefulApp's pod (and of its claims); the names end in it.
    pub const ORDINAL: &str = "drover.dev/ordinal";
    /// The revision (ControllerRevision name) a pod runs.
    pub const REVISION: &str = "drover.dev/revision";
    /// `app.kubernetes.io/managed-by`, set to [`MANAGED_BY_VALUE`].
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "drover";
    /// On a config snapshot: the ConfigMap or Secret it copies.
    pub const SNAPSHOT_OF: &str = "drover.dev/snapshot-of";
}

/// Annotations users set on an App to control its rollout with `kubectl annotate`; the
/// controller removes each once acted on.
pub mod annotation {
    /// Return to an earlier revision, template and config: `previous` or its number.
    pub const UNDO: &str = "drover.dev/undo";
    /// Move a canary on: `step` (past the current step) or `full` (to every pod).
    pub const PROMOTE: &str = "drover.dev/promote";
    /// Send every pod of a canary back to the stable revision (any value).
    pub const ABORT: &str = "drover.dev/abort";
    /// Written by the controller in the same write that removes a command annotation:
    /// the `number` of the command it settled (see `CommandRecord`).
    pub const SETTLED_COMMAND: &str = "drover.dev/settled-command";
    /// On the pod template: changing it restarts every pod through a rollout (what
    /// `kubectl drover rollout restart` sets, like `kubectl rollout restart`).
    pub const RESTARTED_AT: &str = "drover.dev/restartedAt";
    /// Beside an undo on a StatefulApp (`true`): each ordinal's claims are restored from
    /// the snapshots taken, before the update, of the revision the undo returns to.
    pub const RESTORE_DATA: &str = "drover.dev/restore-data";
    /// Set by the controller on an undo (JSON, see [`crate::revision::ConfigPin`]): the
    /// revision whose config snapshots the pods keep until a source is edited again.
    pub const CONFIG_PIN: &str = "drover.dev/config-pin";
}

/// Server-side-apply field managers, one per writer.
pub mod field_manager {
    pub const APP: &str = "drover/app";
    pub const STATEFUL_APP: &str = "drover/statefulapp";
}

/// Who signs the Events each component publishes (the Event's `reportingController`).
pub mod reporter {
    pub const APP: &str = "drover.dev/app-controller";
    pub const SCHEDULER: &str = "drover.dev/scheduler";
}

/// Condition types of drover's resources.
pub mod condition {
    /// Enough pods are available to serve.
    pub const AVAILABLE: &str = "Available";
    /// The workload is moving towards its spec, or has reached it.
    pub const PROGRESSING: &str = "Progressing";
    /// The apiserver refused to create a pod (quota, Pod Security admission, ...).
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
    /// No container of the workload is stuck (crash-looping, or unable to start).
    pub const HEALTHY: &str = "Healthy";
    /// A Service or PodDisruptionBudget the workload asks for is named like an object
    /// it does not own; drover leaves that object alone. Present only while it lasts.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// A ConfigMap or Secret the pod template needs (not marked optional) does not
    /// exist; the pods wait for it. Present only while it lasts.
    pub const CONFIG_MISSING: &str = "ConfigMissing";
    /// A Service port's `targetPort` is a name no container of the template declares,
    /// so the Service has no endpoint for it. Present only while it lasts.
    pub const PORT_UNDECLARED: &str = "PortUndeclared";
    /// The revision the spec asks for could not be stored (its config read, its
    /// snapshots written); the pods stay on the last stored one. Present only while it
    /// lasts.
    pub const REVISION_FAILURE: &str = "RevisionFailure";
    /// Since an undo, the pods run an earlier revision's snapshot of a ConfigMap or
    /// Secret whose contents now differ; editing it rolls out what it holds. Present only
    /// while it lasts.
    pub const CONFIG_PINNED: &str = "ConfigPinned";
    /// A StatefulApp's claims have the size their templates ask for (False while some
    /// are growing, or cannot). Present while the StatefulApp has claim templates.
    pub const CLAIMS_RESIZED: &str = "ClaimsResized";
    /// A StatefulApp's pod is on a node that has been NotReady past the grace period;
    /// its ordinal gets no second pod while it exists. Present only while it lasts.
    pub const NODE_LOST: &str = "NodeLost";
}

/// Condition reasons, and the reasons of the Events that accompany them.
pub mod reason {
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    pub const SCALING: &str = "Scaling";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const REVISION_CREATED: &str = "RevisionCreated";
    pub const COMPLETE: &str = "Complete";
    pub const FAILED_CREATE: &str = "FailedCreate";
    pub const CREATED: &str = "Created";
    pub const CRASH_LOOP: &str = "CrashLoopBackOff";
    pub const CONTAINERS_RUNNING: &str = "ContainersRunning";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const PAUSED: &str = "Paused";
    pub const CANARY: &str = "Canary";
    pub const BLUE_GREEN: &str = "BlueGreen";
    pub const ABORTED: &str = "Aborted";
    pub const PROMOTED: &str = "Promoted";
    pub const EVICTION_BLOCKED: &str = "EvictionBlocked";
    pub const NAME_TAKEN: &str = "NameTaken";
    pub const CONFIG_NOT_FOUND: &str = "ConfigNotFound";
    pub const TARGET_PORT_NOT_FOUND: &str = "TargetPortNotFound";
    pub const REVISION_NOT_STORED: &str = "RevisionNotStored";
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    pub const UNDO_FAILED: &str = "UndoFailed";
    pub const AVAILABLE: &str = "Available";
    pub const UNAVAILABLE: &str = "Unavailable";
    pub const SCALING_UP: &str = "ScalingUp";
    pub const SCALING_DOWN: &str = "ScalingDown";
    /// Pods of an old revision deleted for pods of the new one.
    pub const REPLACING: &str = "Replacing";
    /// A pod ended (Succeeded, Failed, evicted by the kubelet) and is replaced.
    pub const POD_FAILED: &str = "PodFailed";
    /// A pod's node has been NotReady past the grace period; the pod is replaced.
    pub const NODE_LOST: &str = "NodeLost";
    /// A StatefulApp's rollout stops at its partition: lower ordinals keep their revision.
    pub const PARTITIONED: &str = "Partitioned";
    /// A StatefulApp with `updateStrategy: OnDelete` replaces pods as they are deleted.
    pub const ON_DELETE: &str = "OnDelete";
    /// Claims grow to the size their template asks for.
    pub const RESIZING: &str = "Resizing";
    /// Every claim has the size its template asks for.
    pub const CLAIMS_SIZED: &str = "ClaimsSized";
    /// A claim's size could not be raised (its StorageClass does not allow expansion, a
    /// quota), or it is larger than the template asks for.
    pub const RESIZE_FAILED: &str = "ResizeFailed";
    /// The apiserver refused to create a claim.
    pub const FAILED_CREATE_CLAIM: &str = "FailedCreateClaim";
    /// Claims were snapshotted before their pod was replaced by a new revision.
    pub const SNAPSHOT_TAKEN: &str = "SnapshotTaken";
    /// A snapshot could not be taken (the snapshotter's error); the pod waits.
    pub const SNAPSHOT_FAILED: &str = "SnapshotFailed";
    /// Claims were restored from their snapshots (`drover.dev/restore-data`).
    pub const DATA_RESTORED: &str = "DataRestored";
    /// A claim of a removed ordinal was deleted (`whenScaled: Delete`).
    pub const CLAIM_DELETED: &str = "ClaimDeleted";
    /// An object the workload owned and no longer asks for was deleted.
    pub const SERVICE_DELETED: &str = "ServiceDeleted";
    pub const BUDGET_DELETED: &str = "PodDisruptionBudgetDeleted";
    /// The scheduler found no node for a pod.
    pub const FAILED_SCHEDULING: &str = "FailedScheduling";
    pub const SCHEDULED: &str = "Scheduled";
}
