//! The rollout engine shared by the workload controllers: revisions of the pod template,
//! surge and unavailability arithmetic, and the step that moves pods from old revisions to
//! the new one. Pure logic: no API, no clock.

pub mod bounds;
pub mod canary;
pub mod config;
pub mod revision;
pub mod step;

pub use bounds::{Bounds, disruption_budget};
pub use step::{Member, Method, Step, Why, step, step_within};

use drover_crds::{Strategy, StrategyType};

/// The step method a workload's strategy asks for, at `replicas`. A canary moves as a
/// rolling update between its splits (see [`canary`]).
pub fn method(strategy: &Strategy, replicas: u32) -> Method {
    match strategy.type_ {
        StrategyType::Recreate => Method::Recreate,
        // Until a stable revision exists (see the App's blue-green) there is nothing to
        // run beside.
        StrategyType::BlueGreen => Method::Parallel {
            updated: replicas,
            stable: 0,
        },
        StrategyType::RollingUpdate | StrategyType::Canary => {
            Method::Rolling(bounds(strategy, replicas))
        }
    }
}

/// The step method of a paused rollout: each revision keeps its share of the pods.
pub fn held(strategy: &Strategy, replicas: u32) -> Method {
    Method::Hold(bounds(strategy, replicas))
}

/// A strategy's `rollingUpdate` bounds at `replicas`.
pub fn bounds(strategy: &Strategy, replicas: u32) -> Bounds {
    Bounds::resolve(
        &strategy.rolling_update.clone().unwrap_or_default(),
        replicas,
    )
}
