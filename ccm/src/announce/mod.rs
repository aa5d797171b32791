//! Announcing Service addresses over BGP: the desired daemon state computed purely from the
//! cluster, and the adapter that makes a GoBGP daemon hold exactly that.

pub mod announcer;
pub mod gobgp;
pub mod metrics;
pub mod passwords;
pub mod run;
pub mod sidecar;
pub mod world;

/// The decisions, from the core crate.
pub use baremetal_ccm_core::announce::{desired, inputs, plan, status};
