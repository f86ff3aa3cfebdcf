//! The Prometheus text parser lives in `credit_runtime::prom`, shared with the dashboard.

pub use credit_runtime::prom::*;
