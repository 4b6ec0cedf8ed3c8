//! An App's status from what was observed. Pure: `now` is an input.

use std::time::Duration;

use drover_crds::names::{condition, label, reason};
use drover_crds::{AppStatus, BlueGreenStatus, CanaryStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::rollout::config::Source;
use crate::rollout::pods::{PodState, add, earliest, is_active};
use crate::rollout::strategy::Hold;

/// A container that will not start by itself: it keeps crashing, or its image or its
/// configuration keeps it from being created (the kubelet's waiting reason says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub pod: String,
    pub container: String,
    /// The kubelet's reason: `CrashLoopBackOff`, `ImagePullBackOff`, `InvalidImageName`,
    /// `CreateContainerConfigError`, ...
    pub reason: String,
    /// The kubelet's message, if any (what image, what is missing).
    pub message: Option<String>,
    pub restarts: i32,
    /// How it last ended, e.g. `Error, exit code 1`.
    pub last_exit: Option<String>,
}

impl Stuck {
    fn crash_loop(&self) -> bool {
        self.reason == reason::CRASH_LOOP
    }
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.crash_loop() {
            write!(
                f,
                "container {} of pod {} cannot start: {}",
                self.container, self.pod, self.reason
            )?;
            if let Some(message) = &self.message {
                write!(f, " ({message})")?;
            }
            return Ok(());
        }
        write!(
            f,
            "container {} of pod {} is crash-looping ({} restarts",
            self.container, self.pod, self.restarts
        )?;
        if let Some(exit) = &self.last_exit {
            write!(f, ", last exit: {exit}")?;
        }
        write!(f, ")")
    }
}

#[derive(Debug)]
pub struct Observation<'a> {
    pub app: &'a str,
    pub generation: Option<i64>,
    pub replicas: i32,
    /// How many pods below `replicas` may be unavailable with `Available` still True: the
    /// strategy's `maxUnavailable` (a Deployment's minimum availability), so a rollout's
    /// own planned step does not flip it.
    pub max_unavailable: u32,
    /// The ControllerRevision of the current template, and its number once stored.
    pub update_revision: &'a str,
    pub revision_number: Option<i64>,
    pub min_ready: Duration,
    pub progress_deadline: Duration,
    pub paused: bool,
    /// Where a canary or blue-green rollout stands, for the status.
    pub canary: Option<CanaryStatus>,
    pub blue_green: Option<BlueGreenStatus>,
    /// Whether that strategy holds the rollout on purpose.
    pub hold: Option<Hold>,
    /// Observed pods only (no in-flight creates).
    pub pods: &'a [PodState],
    /// Containers that will not start by itself.
    pub stuck: &'a [Stuck],
    /// The apiserver's refusal of the last pod create, while it lasts.
    pub create_failure: Option<&'a str>,
    /// Objects the App asks for that other owners' objects stand in the way of.
    pub conflicts: &'a [String],
    /// ConfigMaps and Secrets the template needs that do not exist.
    pub missing_config: &'a [Source],
    /// Service ports whose target port no container declares, said as the user wrote them.
    pub undeclared_ports: &'a [String],
    /// Why the revision the spec asks for could not be stored, while it cannot.
    pub revision_failure: Option<&'a str>,
    /// Sources whose pods keep an earlier revision's snapshot since an undo.
    pub held_config: &'a [Source],
    pub now: Timestamp,
}

/// The status, and when it will change with nothing else happening (a pod reaching
/// `minReadySeconds`, the progress deadline passing).
pub fn compute(
    obs: &Observation<'_>,
    previous: Option<&AppStatus>,
) -> (AppStatus, Option<Timestamp>) {
    let active: Vec<&PodState> = obs.pods.iter().filter(|p| is_active(p)).collect();
    let ready: Vec<&&PodState> = active.iter().filter(|p| p.ready).collect();
    let mut available = 0;
    let mut revisit_at = None;
    for p in &ready {
        let since = p.ready_since.unwrap_or(obs.now);
        let at = add(since, obs.min_ready);
        if at <= obs.now {
            available += 1;
        } else {
            revisit_at = earliest(revisit_at, at);
        }
    }
    let desired = obs.replicas.max(0);
    let counts = (active.len() as i32, ready.len() as i32, available);
    let old = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(old, (obs.generation, obs.now), type_, ok, reason, message)
    };

    let mut conditions = vec![];
    // As a Deployment's minimum availability, but never with no pod serving.
    let allowed = i32::try_from(obs.max_unavailable).unwrap_or(i32::MAX);
    let needed = desired.saturating_sub(allowed).max(desired.min(1));
    let is_available = available >= needed;
    conditions.push(cond(
        condition::AVAILABLE,
        is_available,
        if is_available {
            reason::MINIMUM_REPLICAS_AVAILABLE
        } else {
            reason::MINIMUM_REPLICAS_UNAVAILABLE
        },
        if needed < desired {
            format!("{available} of {desired} pods available (at least {needed})")
        } else {
            format!("{available} of {desired} pods available")
        },
    ));
    let updated = active
        .iter()
        .filter(|p| p.revision == obs.update_revision)
        .count() as i32;
    let converged = counts.0 == desired && available == desired && updated == desired;
    let rolling = updated < counts.0;
    // Progress: any count moved, or a new revision; the deadline counts from the last.
    let moved = previous.is_none_or(|p| {
        (
            p.update_revision.as_str(),
            p.replicas,
            p.ready_replicas,
            p.available_replicas,
            p.updated_replicas,
        ) != (obs.update_revision, counts.0, counts.1, available, updated)
    });
    let last_progress = match previous.and_then(|p| p.last_progress_time.clone()) {
        Some(at) if !moved => at.0,
        _ => obs.now,
    };
    let deadline = add(last_progress, obs.progress_deadline);
    // Held on purpose (paused, a strategy's pause, an abort): no deadline. A ready pod
    // waiting out minReadySeconds is progress under way: it becomes available by itself,
    // so the deadline cannot pass while one does.
    let held = obs.paused || obs.hold.is_some();
    let maturing = counts.1 > available;
    let stalled = !converged && !held && !maturing && deadline <= obs.now;
    if !converged && !stalled && !held && !maturing {
        revisit_at = earliest(revisit_at, deadline);
    }
    let counts_note = format!(
        "{updated} of {desired} pods on revision {}, {available} available",
        obs.update_revision
    );
    if let Some(hold) = obs.hold.as_ref().filter(|_| !obs.paused && !converged) {
        let (ok, reason, what) = match hold {
            Hold::Waiting { reason, what } => (true, *reason, what),
            Hold::Aborted { what } => (false, reason::ABORTED, what),
        };
        conditions.push(cond(
            condition::PROGRESSING,
            ok,
            reason,
            format!("{what}; {counts_note}"),
        ));
    } else if obs.paused {
        conditions.push(Condition {
            status: "Unknown".into(),
            ..cond(
                condition::PROGRESSING,
                true,
                reason::PAUSED,
                format!(
                    "rollout paused: {updated} of {desired} pods on revision {}, {available} available",
                    obs.update_revision
                ),
            )
        });
    } else if stalled {
        conditions.push(cond(
            condition::PROGRESSING,
            false,
            reason::PROGRESS_DEADLINE_EXCEEDED,
            format!(
                "no progress for {}s: {updated} of {desired} pods updated to revision {}, {available} available",
                obs.progress_deadline.as_secs(),
                obs.update_revision
            ),
        ));
    } else {
        conditions.push(cond(
            condition::PROGRESSING,
            true,
            if converged {
                reason::COMPLETE
            } else if rolling {
                reason::ROLLING_OUT
            } else {
                reason::SCALING
            },
            if converged {
                format!(
                    "{desired} pods of revision {} running and available",
                    obs.update_revision
                )
            } else if rolling {
                format!(
                    "{updated} of {desired} pods updated to revision {}, {available} available",
                    obs.update_revision
                )
            } else {
                format!(
                    "{} of {desired} pods running, {} ready, {available} available",
                    counts.0, counts.1
                )
            },
        ));
    }
    if let Some(refusal) = obs.create_failure {
        conditions.push(cond(
            condition::REPLICA_FAILURE,
            true,
            reason::FAILED_CREATE,
            refusal.to_string(),
        ));
    }
    if !obs.missing_config.is_empty() {
        let named: Vec<String> = named(obs.missing_config)
            .into_iter()
            .map(|s| format!("{s} not found"))
            .collect();
        conditions.push(cond(
            condition::CONFIG_MISSING,
            true,
            reason::CONFIG_NOT_FOUND,
            format!(
                "{}: the pods wait for it; create it, or mark the reference optional",
                named.join(", ")
            ),
        ));
    }
    if let Some(failure) = obs.revision_failure {
        conditions.push(cond(
            condition::REVISION_FAILURE,
            true,
            reason::REVISION_NOT_STORED,
            format!(
                "{failure}; the pods stay on revision {} until it can be stored",
                obs.update_revision
            ),
        ));
    }
    if !obs.held_config.is_empty() {
        let named = named(obs.held_config);
        conditions.push(cond(
            condition::CONFIG_PINNED,
            true,
            reason::ROLLED_BACK,
            format!(
                "{}: the pods run the snapshots of the revision an undo returned to, and the \
                 sources now hold other contents; edit a source to roll out what it holds",
                named.join(", ")
            ),
        ));
    }
    if !obs.undeclared_ports.is_empty() {
        conditions.push(cond(
            condition::PORT_UNDECLARED,
            true,
            reason::TARGET_PORT_NOT_FOUND,
            obs.undeclared_ports.join("; "),
        ));
    }
    if !obs.conflicts.is_empty() {
        conditions.push(cond(
            condition::NAME_CONFLICT,
            true,
            reason::NAME_TAKEN,
            obs.conflicts.join("; "),
        ));
    }
    // Healthy names the first stuck container's reason: the condition's reason is what
    // the kubelet says keeps it from running.
    let healthy = obs.stuck.is_empty();
    conditions.push(cond(
        condition::HEALTHY,
        healthy,
        obs.stuck
            .first()
            .map_or(reason::CONTAINERS_RUNNING, |s| s.reason.as_str()),
        if healthy {
            "every container is running or starting".into()
        } else {
            let mut shown: Vec<String> =
                obs.stuck.iter().take(3).map(ToString::to_string).collect();
            if obs.stuck.len() > 3 {
                shown.push(format!("and {} more", obs.stuck.len() - 3));
            }
            shown.join("; ")
        },
    ));

    // The current revision is what every pod ran when a rollout last completed.
    let current_revision = match previous.map(|s| s.current_revision.as_str()) {
        Some(current) if !current.is_empty() && !converged => current.to_string(),
        _ => obs.update_revision.to_string(),
    };
    let status = AppStatus {
        observed_generation: obs.generation,
        replicas: counts.0,
        ready_replicas: counts.1,
        available_replicas: counts.2,
        updated_replicas: updated,
        current_revision,
        update_revision: obs.update_revision.to_string(),
        revision: obs.revision_number,
        canary: obs.canary.clone(),
        blue_green: obs.blue_green.clone(),
        // The report step records the command it settles.
        last_command: None,
        last_progress_time: Some(Time(last_progress)),
        selector: format!("{}={}", label::APP, obs.app),
        conditions,
    };
    (status, revisit_at)
}

/// A condition `type_` (True when `ok`) as of `(generation, now)`. Its transition time
/// is the one in `old` while its status stays, `now` when it changes.
pub fn condition(
    old: &[Condition],
    (generation, now): (Option<i64>, Timestamp),
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// ConfigMaps and Secrets as conditions name them: `ConfigMap "settings"`.
fn named(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .map(|s| format!("{} {:?}", s.kind.as_str(), s.name))
        .collect()
}

/// Whether `new` differs from `old` only in how many pods are where (the counts, the
/// Available and Progressing messages that quote them, the progress time): no condition changed status or reason,
/// no revision, strategy step or command moved. Such a status may wait a moment to be
/// written with the next one; every other change is written at once.
pub fn only_counts_moved(old: &AppStatus, new: &AppStatus) -> bool {
    let shape = |s: &AppStatus| AppStatus {
        replicas: 0,
        ready_replicas: 0,
        available_replicas: 0,
        updated_replicas: 0,
        last_progress_time: None,
        conditions: s
            .conditions
            .iter()
            .map(|c| match c.type_.as_str() {
                condition::AVAILABLE | condition::PROGRESSING => Condition {
                    message: String::new(),
                    ..c.clone()
                },
                _ => c.clone(),
            })
            .collect(),
        ..s.clone()
    };
    shape(old) == shape(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::pods::Phase;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn pod(slot: u32, ready_since: Option<i64>) -> PodState {
        PodState {
            name: format!("web-{slot}"),
            uid: format!("u{slot}"),
            slot,
            revision: "web-r1".into(),
            phase: Phase::Running,
            terminating: false,
            node: Some("n".into()),
            ready: ready_since.is_some(),
            ready_since: ready_since.map(t),
            created: t(0),
            restarts: 0,
        }
    }

    fn obs<'a>(pods: &'a [PodState], stuck: &'a [Stuck], min_ready: u64) -> Observation<'a> {
        Observation {
            app: "web",
            generation: Some(4),
            replicas: 3,
            max_unavailable: 0,
            update_revision: "web-r1",
            revision_number: Some(1),
            min_ready: Duration::from_secs(min_ready),
            progress_deadline: Duration::from_secs(600),
            paused: false,
            canary: None,
            blue_green: None,
            hold: None,
            pods,
            stuck,
            create_failure: None,
            conflicts: &[],
            missing_config: &[],
            undeclared_ports: &[],
            revision_failure: None,
            held_config: &[],
            now: t(100),
        }
    }

    fn find<'a>(s: &'a AppStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn counts_and_availability_honour_min_ready_seconds() {
        let pods = [pod(0, Some(0)), pod(1, Some(95)), pod(2, None)];
        let (s, revisit) = compute(&obs(&pods, &[], 10), None);
        assert_eq!(
            (s.replicas, s.ready_replicas, s.available_replicas),
            (3, 2, 1)
        );
        assert_eq!(
            revisit,
            Some(t(105)),
            "the second pod becomes available at 95+10"
        );
        assert_eq!(s.selector, "drover.dev/app=web");
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(find(&s, "Available").status, "False");
        assert_eq!(find(&s, "Progressing").reason, "Scaling");
    }

    #[test]
    fn available_and_complete_when_all_pods_are_available() {
        let pods = [pod(0, Some(0)), pod(1, Some(0)), pod(2, Some(0))];
        let (s, revisit) = compute(&obs(&pods, &[], 0), None);
        assert_eq!(find(&s, "Available").status, "True");
        assert_eq!(find(&s, "Progressing").reason, "Complete");
        assert_eq!(find(&s, "Healthy").status, "True");
        assert!(s.conditions.iter().all(|c| c.type_ != "ReplicaFailure"));
        assert_eq!(revisit, None);
    }

    #[test]
    fn a_rollout_is_reported_and_completes_into_the_current_revision() {
        let mut old = pod(0, Some(0));
        old.revision = "web-r0".into();
        let pods = [old, pod(1, Some(0)), pod(2, Some(0))];
        let previous = AppStatus {
            current_revision: "web-r0".into(),
            ..AppStatus::default()
        };
        let (s, _) = compute(&obs(&pods, &[], 0), Some(&previous));
        assert_eq!(s.updated_replicas, 2);
        assert_eq!(
            (s.current_revision.as_str(), s.update_revision.as_str()),
            ("web-r0", "web-r1")
        );
        let progressing = find(&s, "Progressing");
        assert_eq!(progressing.reason, "RollingOut");
        assert_eq!(
            progressing.message,
            "2 of 3 pods updated to revision web-r1, 3 available"
        );
        let pods = [pod(3, Some(0)), pod(1, Some(0)), pod(2, Some(0))];
        let (s, _) = compute(&obs(&pods, &[], 0), Some(&s));
        assert_eq!(s.current_revision, "web-r1");
        assert_eq!(find(&s, "Progressing").reason, "Complete");
        assert_eq!(s.revision, Some(1));
    }

    #[test]
    fn a_rollout_without_progress_for_the_deadline_is_reported() {
        let mut old = pod(0, Some(0));
        old.revision = "web-r0".into();
        let stuck = PodState {
            ready: false,
            ready_since: None,
            ..pod(3, None)
        };
        let pods = [old.clone(), pod(1, Some(0)), pod(2, Some(0)), stuck];
        let mut o = obs(&pods, &[], 0);
        o.now = t(1000);
        let (first, revisit) = compute(&o, None);
        assert_eq!(first.last_progress_time, Some(Time(t(1000))));
        assert_eq!(find(&first, "Progressing").status, "True");
        assert_eq!(revisit, Some(t(1600)), "woken when the deadline passes");

        // Nothing moved for 600 s: the deadline has passed.
        o.now = t(1600);
        let (late, _) = compute(&o, Some(&first));
        let progressing = find(&late, "Progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("False", "ProgressDeadlineExceeded")
        );
        assert_eq!(
            progressing.message,
            "no progress for 600s: 3 of 3 pods updated to revision web-r1, 3 available"
        );
        assert_eq!(late.last_progress_time, Some(Time(t(1000))));

        // A pod moving is progress: the clock starts again.
        let pods = [old, pod(1, Some(0)), pod(2, Some(0)), pod(3, Some(1650))];
        let mut o = obs(&pods, &[], 0);
        o.now = t(1700);
        let (moved, _) = compute(&o, Some(&late));
        assert_eq!(find(&moved, "Progressing").status, "True");
        assert_eq!(moved.last_progress_time, Some(Time(t(1700))));
    }

    #[test]
    fn pods_waiting_out_min_ready_are_progress() {
        // minReadySeconds longer than the deadline (refused at admission, but the logic
        // must hold): the new pods are ready and need 700 s to count as available.
        let mut old = pod(0, Some(0));
        old.revision = "web-r0".into();
        let pods = [
            old,
            pod(1, Some(1000)),
            pod(2, Some(1000)),
            pod(3, Some(1000)),
        ];
        let mut o = obs(&pods, &[], 700);
        o.now = t(1000);
        let (first, _) = compute(&o, None);
        o.now = t(1650);
        let (later, revisit) = compute(&o, Some(&first));
        let progressing = find(&later, "Progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", "RollingOut"),
            "{}",
            progressing.message
        );
        assert_eq!(revisit, Some(t(1700)), "woken when they become available");
    }

    #[test]
    fn a_complete_app_never_misses_the_deadline() {
        let pods = [pod(0, Some(0)), pod(1, Some(0)), pod(2, Some(0))];
        let mut o = obs(&pods, &[], 0);
        let (first, revisit) = compute(&o, None);
        assert_eq!(revisit, None);
        o.now = t(100_000);
        let (later, _) = compute(&o, Some(&first));
        assert_eq!(find(&later, "Progressing").reason, "Complete");
        assert_eq!(later, first, "nothing to write");
    }

    #[test]
    fn available_tolerates_the_strategys_max_unavailable() {
        let pods = [pod(0, Some(0)), pod(1, Some(0)), pod(2, None)];
        let one_down = Observation {
            max_unavailable: 1,
            ..obs(&pods, &[], 0)
        };
        let (s, _) = compute(&one_down, None);
        let c = find(&s, "Available");
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            ("True", "2 of 3 pods available (at least 2)")
        );
        let (s, _) = compute(
            &Observation {
                max_unavailable: 1,
                ..obs(&pods[..1], &[], 0)
            },
            None,
        );
        assert_eq!(
            find(&s, "Available").status,
            "False",
            "two down, one allowed"
        );
        let (s, _) = compute(
            &Observation {
                replicas: 1,
                max_unavailable: 1,
                ..obs(&[], &[], 0)
            },
            None,
        );
        let c = find(&s, "Available");
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            ("False", "0 of 1 pods available"),
            "never available with no pod"
        );
        let (s, _) = compute(
            &Observation {
                replicas: 0,
                max_unavailable: 1,
                ..obs(&[], &[], 0)
            },
            None,
        );
        let c = find(&s, "Available");
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            ("True", "0 of 0 pods available")
        );
    }

    #[test]
    fn terminating_pods_do_not_count() {
        let mut going = pod(2, Some(0));
        going.terminating = true;
        let pods = [pod(0, Some(0)), pod(1, Some(0)), going];
        let (s, _) = compute(&obs(&pods, &[], 0), None);
        assert_eq!(s.replicas, 2);
        assert_eq!(find(&s, "Available").status, "False");
    }

    #[test]
    fn crash_loops_and_refused_creates_are_reported() {
        let crash = [Stuck {
            pod: "web-1".into(),
            container: "app".into(),
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off 40s restarting failed container".into()),
            restarts: 5,
            last_exit: Some("Error, exit code 1".into()),
        }];
        let mut o = obs(&[], &crash, 0);
        o.create_failure =
            Some("pods \"web-0\" is forbidden: violates PodSecurity \"restricted:latest\"");
        let (s, _) = compute(&o, None);
        let healthy = find(&s, "Healthy");
        assert_eq!(
            (healthy.status.as_str(), healthy.reason.as_str()),
            ("False", "CrashLoopBackOff")
        );
        assert_eq!(
            healthy.message,
            "container app of pod web-1 is crash-looping (5 restarts, last exit: Error, exit code 1)"
        );
        let failure = find(&s, "ReplicaFailure");
        assert_eq!(
            (failure.status.as_str(), failure.reason.as_str()),
            ("True", "FailedCreate")
        );
        assert!(failure.message.contains("violates PodSecurity"));
    }

    #[test]
    fn containers_that_cannot_start_are_unhealthy() {
        let pull = Stuck {
            pod: "web-0".into(),
            container: "app".into(),
            reason: "ImagePullBackOff".into(),
            message: Some("Back-off pulling image \"registry.local/nope:1\"".into()),
            restarts: 0,
            last_exit: None,
        };
        let (s, _) = compute(&obs(&[], std::slice::from_ref(&pull), 0), None);
        let healthy = find(&s, "Healthy");
        assert_eq!(
            (healthy.status.as_str(), healthy.reason.as_str()),
            ("False", "ImagePullBackOff")
        );
        assert_eq!(
            healthy.message,
            "container app of pod web-0 cannot start: ImagePullBackOff (Back-off pulling image \"registry.local/nope:1\")"
        );
        let (s, _) = compute(&obs(&[], &[], 0), None);
        assert_eq!(find(&s, "Healthy").status, "True");
    }

    #[test]
    fn missing_config_is_named_as_the_user_wrote_it() {
        let missing = [Source {
            kind: drover_crds::revision::ConfigKind::ConfigMap,
            name: "missing-cm".into(),
        }];
        let mut o = obs(&[], &[], 0);
        o.missing_config = &missing;
        let (s, _) = compute(&o, None);
        let c = find(&s, "ConfigMissing");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "ConfigNotFound")
        );
        assert!(
            c.message
                .starts_with("ConfigMap \"missing-cm\" not found: "),
            "{}",
            c.message
        );
        let (s, _) = compute(&obs(&[], &[], 0), None);
        assert!(s.conditions.iter().all(|c| c.type_ != "ConfigMissing"));
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let pods = [pod(0, Some(0)), pod(1, Some(0)), pod(2, Some(0))];
        let (first, _) = compute(&obs(&pods, &[], 0), None);
        let mut later = obs(&pods, &[], 0);
        later.now = t(500);
        let (second, _) = compute(&later, Some(&first));
        assert_eq!(
            find(&second, "Available").last_transition_time,
            find(&first, "Available").last_transition_time
        );
        let (third, _) = compute(
            &Observation {
                pods: &pods[..1],
                ..later
            },
            Some(&second),
        );
        assert_eq!(find(&third, "Available").status, "False");
        assert_eq!(find(&third, "Available").last_transition_time, Time(t(500)));
    }

    #[test]
    fn only_counts_moving_is_told_apart_from_a_change_of_state() {
        let scaling = [pod(0, Some(0)), pod(1, None), pod(2, None)];
        let (before, _) = compute(&obs(&scaling, &[], 0), None);
        let more = [pod(0, Some(0)), pod(1, Some(0)), pod(2, None)];
        let (after, _) = compute(&obs(&more, &[], 0), Some(&before));
        assert_ne!(before, after);
        assert!(only_counts_moved(&before, &after), "one more pod ready");
        let all = [pod(0, Some(0)), pod(1, Some(0)), pod(2, Some(0))];
        let (done, _) = compute(&obs(&all, &[], 0), Some(&after));
        assert!(
            !only_counts_moved(&after, &done),
            "Available turned True and Progressing Complete: written at once"
        );
        let newer = AppStatus {
            update_revision: "web-r2".into(),
            ..after.clone()
        };
        assert!(!only_counts_moved(&after, &newer), "a new revision");
        let later = AppStatus {
            observed_generation: Some(5),
            ..after.clone()
        };
        assert!(!only_counts_moved(&after, &later), "a new generation");
    }
}
