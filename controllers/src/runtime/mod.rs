//! What every drover controller shares: metrics and the admin port, logging, leader
//! election, the client's rate limit, what watches keep of objects.

pub mod admin;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod trim;
