//! Surge and unavailability arithmetic: `maxSurge` / `maxUnavailable` as pod counts.

use drover_crds::RollingUpdate;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// How far a rollout may stray from `replicas`, in pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Pods allowed above `replicas`.
    pub max_surge: u32,
    /// Available pods allowed below `replicas`.
    pub max_unavailable: u32,
}

impl Bounds {
    /// Resolves a rolling update's bounds against `replicas`: a percentage of surge rounds
    /// up and one of unavailability rounds down (as Deployments do), and if both come to
    /// zero one pod may be unavailable, so the rollout can always move.
    pub fn resolve(r: &RollingUpdate, replicas: u32) -> Bounds {
        let max_surge = pods(&r.max_surge(), replicas, true);
        let mut max_unavailable = pods(&r.max_unavailable(), replicas, false);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Bounds {
            max_surge,
            max_unavailable,
        }
    }
}

/// How many pods a disruption budget lets go at once: its count, or its percentage of
/// `replicas` rounded down — never less than one, so pods can always be replaced.
pub fn disruption_budget(max_unavailable: &IntOrString, replicas: u32) -> u32 {
    pods(max_unavailable, replicas, false).max(1)
}

/// A count or a percentage of `replicas` as pods. CEL in the CRD admits only `N`, `"N"`
/// and `"N%"`; anything else (an object stored before the rule existed) counts as 0.
fn pods(value: &IntOrString, replicas: u32, round_up: bool) -> u32 {
    match value {
        IntOrString::Int(n) => u32::try_from(*n).unwrap_or(0),
        IntOrString::String(s) => match s.strip_suffix('%') {
            Some(percent) => {
                let percent = u64::from(percent.parse::<u32>().unwrap_or(0));
                let scaled = u64::from(replicas) * percent;
                let pods = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(pods).unwrap_or(u32::MAX)
            }
            None => s.parse().unwrap_or(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disruption_budget_is_at_least_one_pod() {
        assert_eq!(disruption_budget(&IntOrString::Int(2), 10), 2);
        assert_eq!(disruption_budget(&IntOrString::String("25%".into()), 10), 2);
        assert_eq!(disruption_budget(&IntOrString::String("25%".into()), 3), 1);
        assert_eq!(disruption_budget(&IntOrString::String("10%".into()), 0), 1);
    }

    fn bounds(surge: IntOrString, unavailable: IntOrString, replicas: u32) -> Bounds {
        Bounds::resolve(
            &RollingUpdate {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            },
            replicas,
        )
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_round_surge_up_and_unavailability_down() {
        assert_eq!(
            bounds(pct("25%"), pct("25%"), 10),
            Bounds {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        assert_eq!(
            bounds(pct("10%"), pct("10%"), 3),
            Bounds {
                max_surge: 1,
                max_unavailable: 0
            }
        );
    }

    #[test]
    fn counts_are_taken_as_they_are() {
        assert_eq!(
            bounds(IntOrString::Int(2), pct("1"), 10),
            Bounds {
                max_surge: 2,
                max_unavailable: 1
            }
        );
    }

    #[test]
    fn defaults_surge_a_quarter_and_keep_every_pod_available() {
        assert_eq!(
            Bounds::resolve(&RollingUpdate::default(), 10),
            Bounds {
                max_surge: 3,
                max_unavailable: 0
            }
        );
    }

    #[test]
    fn a_rollout_can_always_move() {
        assert_eq!(
            bounds(pct("0%"), pct("10%"), 5),
            Bounds {
                max_surge: 0,
                max_unavailable: 1
            }
        );
    }
}
