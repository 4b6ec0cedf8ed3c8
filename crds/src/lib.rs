//! drover's API types (`drover.dev/v1alpha1`), their validation rules and the names drover
//! puts on objects. No client and no runtime: this crate only describes the API.

pub mod app;
pub mod names;
pub mod revision;
pub mod rollout;
pub mod stateful;
#[cfg(test)]
mod testing;

pub use app::{App, AppPort, AppSpec, AppStatus, Disruption, Placement, Protocol};
pub use rollout::{
    BlueGreen, BlueGreenStatus, Canary, CanaryPause, CanaryStatus, CanaryStep, CommandRecord,
    RollingUpdate, Strategy, StrategyType,
};
pub use stateful::{StatefulApp, StatefulAppSpec, StatefulAppStatus};
