//! The StatefulApp controller (under construction: the ordinal plan so far; it joins the
//! App's workload engine for revisions, config, commands and status).

pub mod claims;
pub mod plan;
