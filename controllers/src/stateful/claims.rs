//! The claims of a StatefulApp (pure): each ordinal's claim of each template, made before
//! its pod; grown in place when the template asks for more; deleted with their ordinal
//! when the retention policy says so, once its pod is gone.

use std::ops::Range;

use drover_crds::stateful::Retention;

/// A claim's name: `<template>-<statefulapp>-<ordinal>`, as a StatefulSet names them (so
/// claims move between the two kinds by name).
pub fn claim_name(template: &str, app: &str, ordinal: u32) -> String {
    format!("{template}-{app}-{ordinal}")
}

/// A claim template as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'a> {
    pub name: &'a str,
    /// The storage it asks for, in bytes.
    pub size: u64,
}

/// A claim of the StatefulApp as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    pub template: String,
    pub ordinal: u32,
    /// The storage its spec asks for, in bytes.
    pub requested: u64,
    /// Its capacity as bound (`None` until bound).
    pub capacity: Option<u64>,
    pub terminating: bool,
}

#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub app: &'a str,
    pub templates: &'a [Template<'a>],
    /// The ordinals asked for.
    pub wanted: Range<u32>,
    /// Ordinals that have a pod (running, starting or going).
    pub with_pod: &'a [u32],
    pub claims: &'a [Claim],
    pub when_scaled: Retention,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `(template, ordinal)` of claims to make.
    pub creates: Vec<(String, u32)>,
    /// Claims to grow, and to what size in bytes.
    pub grows: Vec<(String, u64)>,
    /// Claims to delete (their ordinal is gone and the policy deletes them).
    pub deletes: Vec<String>,
    /// Claims a template asks to shrink: refused (a claim cannot shrink).
    pub shrinks: Vec<String>,
    /// Per template: claims that exist, and claims whose capacity is the size asked.
    pub sized: Vec<(String, u32, u32)>,
}

pub fn plan(input: &Input<'_>) -> Plan {
    let mut plan = Plan::default();
    for t in input.templates {
        let (mut total, mut sized) = (0, 0);
        for ordinal in input.wanted.clone() {
            let name = claim_name(t.name, input.app, ordinal);
            match input.claims.iter().find(|c| c.name == name) {
                None => plan.creates.push((t.name.to_string(), ordinal)),
                // A claim being deleted is made again once it is gone.
                Some(c) if c.terminating => {}
                Some(c) => {
                    total += 1;
                    if c.requested < t.size {
                        plan.grows.push((name, t.size));
                    } else if c.requested > t.size {
                        plan.shrinks.push(name);
                    }
                    if c.capacity.is_some_and(|cap| cap >= t.size) {
                        sized += 1;
                    }
                }
            }
        }
        plan.sized.push((t.name.to_string(), total, sized));
    }
    if input.when_scaled == Retention::Delete {
        for c in input.claims {
            let is_ours = input.templates.iter().any(|t| t.name == c.template);
            if is_ours
                && !input.wanted.contains(&c.ordinal)
                && !c.terminating
                && !input.with_pod.contains(&c.ordinal)
            {
                plan.deletes.push(c.name.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: u64 = 1 << 30;

    fn claim(template: &str, ordinal: u32, requested: u64, capacity: Option<u64>) -> Claim {
        Claim {
            name: claim_name(template, "db", ordinal),
            template: template.into(),
            ordinal,
            requested,
            capacity,
            terminating: false,
        }
    }

    fn input<'a>(
        templates: &'a [Template<'a>],
        wanted: Range<u32>,
        with_pod: &'a [u32],
        claims: &'a [Claim],
        when_scaled: Retention,
    ) -> Input<'a> {
        Input {
            app: "db",
            templates,
            wanted,
            with_pod,
            claims,
            when_scaled,
        }
    }

    #[test]
    fn claims_are_named_as_a_statefulsets() {
        assert_eq!(claim_name("data", "db", 2), "data-db-2");
    }

    #[test]
    fn every_wanted_ordinal_gets_a_claim_of_every_template() {
        let templates = [
            Template {
                name: "data",
                size: GI,
            },
            Template {
                name: "wal",
                size: GI,
            },
        ];
        let claims = [claim("data", 0, GI, Some(GI))];
        let p = plan(&input(&templates, 0..2, &[0], &claims, Retention::Retain));
        assert_eq!(
            p.creates,
            [("data".into(), 1), ("wal".into(), 0), ("wal".into(), 1)]
        );
        assert_eq!(p.sized, [("data".into(), 1, 1), ("wal".into(), 0, 0)]);
    }

    #[test]
    fn a_larger_template_grows_every_claim_and_a_smaller_one_is_refused() {
        let templates = [Template {
            name: "data",
            size: 2 * GI,
        }];
        let claims = [
            claim("data", 0, GI, Some(GI)),
            claim("data", 1, 2 * GI, Some(2 * GI)),
        ];
        let p = plan(&input(
            &templates,
            0..2,
            &[0, 1],
            &claims,
            Retention::Retain,
        ));
        assert_eq!(p.grows, [("data-db-0".into(), 2 * GI)]);
        assert_eq!(p.sized, [("data".into(), 2, 1)]);
        let smaller = [Template {
            name: "data",
            size: GI / 2,
        }];
        let p = plan(&input(&smaller, 0..2, &[0, 1], &claims, Retention::Retain));
        assert!(p.grows.is_empty());
        assert_eq!(p.shrinks, ["data-db-0", "data-db-1"]);
    }

    #[test]
    fn scaled_in_claims_go_only_by_policy_and_after_their_pod() {
        let templates = [Template {
            name: "data",
            size: GI,
        }];
        let claims: Vec<Claim> = (0..3).map(|o| claim("data", o, GI, Some(GI))).collect();
        let kept = plan(&input(&templates, 0..1, &[0], &claims, Retention::Retain));
        assert!(kept.deletes.is_empty());
        // Ordinal 2's pod still runs: its claim waits.
        let p = plan(&input(
            &templates,
            0..1,
            &[0, 2],
            &claims,
            Retention::Delete,
        ));
        assert_eq!(p.deletes, ["data-db-1"]);
        // Scaled out again with Retain: the old claims are used, none made.
        let p = plan(&input(&templates, 0..3, &[0], &claims, Retention::Retain));
        assert!(p.creates.is_empty());
    }
}
