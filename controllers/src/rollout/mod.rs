//! The rollout engine shared by the workload controllers, whatever the workload's kind
//! (see [`workload::Workload`]): revisions of the pod template and the config it pins,
//! surge and unavailability arithmetic, the strategies (rolling update, recreate, canary,
//! blue-green) and the commands and undo that steer them, and the step that moves pods
//! from old revisions to the new one. Pure logic: no API, no clock.

pub mod blue_green;
pub mod bounds;
pub mod canary;
pub mod command;
pub mod config;
pub mod pods;
pub mod revision;
pub mod status;
pub mod step;
pub mod strategy;
pub mod undo;
pub mod workload;

pub use bounds::{Bounds, disruption_budget};
pub use step::{Member, Method, Step, Why, step, step_within};
