//! Announcing Service addresses over BGP: the desired daemon state computed purely from the
//! cluster, and the adapter that makes a GoBGP daemon hold exactly that.

pub(crate) mod announcer;
pub(crate) mod gobgp;
pub(crate) mod metrics;
pub(crate) mod passwords;
pub(crate) mod run;
pub(crate) mod sidecar;
pub(crate) mod world;

/// The decisions, from the core crate.
pub(crate) use baremetal_ccm_core::announce::{desired, inputs, plan, status};
