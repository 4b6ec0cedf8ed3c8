//! Snapshots of a StatefulApp's claims (pure): with `volumeSnapshots.beforeUpdate`, each
//! of an ordinal's claims is snapshotted, and the snapshots ready to use, before its pod
//! is replaced by a new revision; `drover.dev/restore-data` (beside an undo) brings each
//! ordinal's claims back from the snapshots taken of the revision the undo returned to.
//! A snapshot is named after its claim and the revision whose pods wrote the data, and is
//! owned by that revision's ControllerRevision: pruning the revision prunes them.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;

use super::claims::claim_name;

/// The API group of VolumeSnapshots.
pub const GROUP: &str = "snapshot.storage.k8s.io";

/// A snapshot's name: `<claim>-<revision>` (the revision whose pods wrote the data).
pub fn snapshot_name(claim: &str, revision: &str) -> String {
    format!("{claim}-{revision}")
}

/// A snapshot of the StatefulApp's claims, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    /// Ready to use (`status.readyToUse`).
    pub ready: bool,
    /// The snapshotter's error, if any.
    pub error: Option<String>,
    pub created: Option<Timestamp>,
    pub deleting: bool,
}

/// An ordinal's claim as the restore sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    /// The snapshot it was made from (`spec.dataSource`), if any.
    pub restored_from: Option<String>,
    pub terminating: bool,
}

/// Before an outdated pod goes: the snapshots to take, and whether the pod must wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Before {
    /// `(claim, revision)` of snapshots to take.
    pub takes: Vec<(String, String)>,
    /// The pod waits: a snapshot of its claims is missing or not ready yet.
    pub wait: bool,
    /// What the snapshotter says of a snapshot that failed.
    pub failed: Vec<String>,
    /// Snapshots of the revision older than the pod, to delete and take again.
    pub stale: Vec<String>,
}

/// What the pod of `ordinal`, at `revision` and created at `since`, needs before it is
/// replaced. A snapshot of the same claim and revision taken before that pod started (an
/// earlier stay on the revision, before an undo back to it) misses what the pod wrote: it
/// is taken again.
pub fn before_update(
    app: &str,
    templates: &[&str],
    (ordinal, revision, since): (u32, &str, Timestamp),
    snapshots: &[Snapshot],
) -> Before {
    let mut before = Before::default();
    for template in templates {
        let claim = claim_name(template, app, ordinal);
        let name = snapshot_name(&claim, revision);
        match snapshots.iter().find(|s| s.name == name) {
            None => {
                before.takes.push((claim, revision.to_string()));
                before.wait = true;
            }
            Some(s) if s.deleting => before.wait = true,
            Some(s) if s.created.is_some_and(|at| at < since) => {
                before.stale.push(name);
                before.wait = true;
            }
            Some(s) if s.ready => {}
            Some(s) => {
                before.wait = true;
                if let Some(error) = &s.error {
                    before.failed.push(format!("snapshot {}: {error}", s.name));
                }
            }
        }
    }
    before
}

/// One step of an ordinal's restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// Its pod goes first (it holds the claims).
    DeletePod,
    /// Its claim goes, to be made again from the snapshot.
    DeleteClaim(String),
    /// The claim is made from the snapshot.
    CreateClaim { claim: String, snapshot: String },
    /// Waiting for the pod or a claim to be gone, or a snapshot to be ready.
    Wait,
    /// Every claim of the ordinal holds its snapshot's data.
    Done,
    /// No snapshot of the revision for this claim: the ordinal keeps its data.
    NoSnapshot(String),
}

/// The ordinal's claims and pod, for its restore.
#[derive(Debug, Clone)]
pub struct Ordinal<'a> {
    pub ordinal: u32,
    /// Its pod exists (`Some(true)`: and is going away).
    pub pod: Option<bool>,
    pub claims: &'a [Claim],
}

/// The next step of an ordinal's restore to the data its claims held at `revision`.
pub fn restore(
    app: &str,
    templates: &[&str],
    revision: &str,
    ordinal: &Ordinal<'_>,
    snapshots: &[Snapshot],
) -> Restore {
    let mut wanted = vec![];
    for template in templates {
        let claim = claim_name(template, app, ordinal.ordinal);
        let snapshot = snapshot_name(&claim, revision);
        match snapshots.iter().find(|s| s.name == snapshot) {
            None => return Restore::NoSnapshot(claim),
            Some(s) if !s.ready => return Restore::Wait,
            Some(_) => {}
        }
        let current = ordinal.claims.iter().find(|c| c.name == claim);
        if current.is_none_or(|c| c.restored_from.as_deref() != Some(snapshot.as_str())) {
            wanted.push((claim, snapshot, current));
        }
    }
    if wanted.is_empty() {
        return Restore::Done;
    }
    match ordinal.pod {
        Some(false) => return Restore::DeletePod,
        Some(true) => return Restore::Wait,
        None => {}
    }
    let (claim, snapshot, current) = wanted.swap_remove(0);
    match current {
        Some(c) if c.terminating => Restore::Wait,
        Some(_) => Restore::DeleteClaim(claim),
        None => Restore::CreateClaim { claim, snapshot },
    }
}

/// The claims a restore is replacing: the claim plan must not make them afresh.
pub fn replacing(steps: &[(u32, Restore)], app: &str, templates: &[&str]) -> BTreeSet<String> {
    steps
        .iter()
        .filter(|(_, step)| !matches!(step, Restore::Done | Restore::NoSnapshot(_)))
        .flat_map(|(ordinal, _)| templates.iter().map(|t| claim_name(t, app, *ordinal)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn snap(name: &str, ready: bool) -> Snapshot {
        Snapshot {
            name: name.into(),
            ready,
            error: None,
            created: Some(t(10)),
            deleting: false,
        }
    }

    /// Ordinal 2's pod at revision db-r1, started at 5.
    const POD: (u32, &str, i64) = (2, "db-r1", 5);

    fn before(templates: &[&str], snapshots: &[Snapshot]) -> Before {
        before_update("db", templates, (POD.0, POD.1, t(POD.2)), snapshots)
    }

    #[test]
    fn a_snapshot_older_than_the_pod_is_taken_again() {
        let mut old = snap("data-db-2-db-r1", true);
        old.created = Some(t(1));
        let b = before(&["data"], &[old.clone()]);
        assert_eq!(
            (b.wait, b.stale.as_slice()),
            (true, ["data-db-2-db-r1".to_string()].as_slice())
        );
        old.deleting = true;
        let b = before(&["data"], &[old]);
        assert!(b.wait && b.stale.is_empty() && b.takes.is_empty(), "{b:?}");
        assert_eq!(before(&["data"], &[]).takes.len(), 1, "then taken anew");
    }

    #[test]
    fn a_pod_is_replaced_only_once_every_claim_has_a_ready_snapshot() {
        let none = before(&["data", "wal"], &[]);
        assert!(none.wait);
        assert_eq!(
            none.takes,
            [
                ("data-db-2".to_string(), "db-r1".to_string()),
                ("wal-db-2".to_string(), "db-r1".to_string())
            ]
        );
        let taking = [snap("data-db-2-db-r1", true), snap("wal-db-2-db-r1", false)];
        let b = before(&["data", "wal"], &taking);
        assert!(b.wait && b.takes.is_empty(), "{b:?}");
        let ready = [snap("data-db-2-db-r1", true), snap("wal-db-2-db-r1", true)];
        assert_eq!(before(&["data", "wal"], &ready), Before::default());
        let mut failed = snap("data-db-2-db-r1", false);
        failed.error = Some("no space".into());
        let b = before(&["data"], &[failed]);
        assert_eq!(b.failed, ["snapshot data-db-2-db-r1: no space"]);
    }

    #[test]
    fn a_restore_takes_the_pod_then_the_claim_down_and_makes_it_from_the_snapshot() {
        let snapshots = [snap("data-db-0-db-r1", true)];
        let claim = |restored_from: Option<&str>, terminating| {
            vec![Claim {
                name: "data-db-0".into(),
                restored_from: restored_from.map(String::from),
                terminating,
            }]
        };
        let step = |pod, claims: &[Claim]| {
            let ordinal = Ordinal {
                ordinal: 0,
                pod,
                claims,
            };
            restore("db", &["data"], "db-r1", &ordinal, &snapshots)
        };
        let live = claim(None, false);
        assert_eq!(step(Some(false), &live), Restore::DeletePod);
        assert_eq!(step(Some(true), &live), Restore::Wait);
        assert_eq!(step(None, &live), Restore::DeleteClaim("data-db-0".into()));
        assert_eq!(step(None, &claim(None, true)), Restore::Wait);
        assert_eq!(
            step(None, &[]),
            Restore::CreateClaim {
                claim: "data-db-0".into(),
                snapshot: "data-db-0-db-r1".into()
            }
        );
        let restored = claim(Some("data-db-0-db-r1"), false);
        assert_eq!(step(Some(false), &restored), Restore::Done);
        // An ordinal without a snapshot of that revision keeps its data.
        let other = Ordinal {
            ordinal: 1,
            pod: Some(false),
            claims: &[],
        };
        assert_eq!(
            restore("db", &["data"], "db-r1", &other, &snapshots),
            Restore::NoSnapshot("data-db-1".into())
        );
        let steps = [
            (0, Restore::DeletePod),
            (1, Restore::NoSnapshot("x".into())),
        ];
        assert_eq!(
            replacing(&steps, "db", &["data"]),
            BTreeSet::from(["data-db-0".to_string()])
        );
    }
}
