//! Announcing Service addresses over BGP: the desired daemon state computed purely from the
//! cluster, and the adapter that makes a GoBGP daemon hold exactly that.

pub mod announcer;
pub mod desired;
pub mod gobgp;
pub mod inputs;
pub mod metrics;
pub mod passwords;
pub mod plan;
pub mod run;
pub mod sidecar;
pub mod status;
pub mod world;

#[cfg(test)]
mod tests;
