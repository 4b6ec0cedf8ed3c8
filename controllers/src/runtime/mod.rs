//! What every drover controller shares: metrics and the admin port, logging, leader
//! election, the client's rate limit.

pub mod admin;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
