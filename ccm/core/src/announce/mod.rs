//! What the BGP announcer decides, without I/O: what it reads of the cluster as validated
//! plain data (`inputs`), the desired state of one speaker's daemon (`plan`, `desired`), the
//! model of a gobgpd and the planner that converges one (`gobgp`), each speaker's BGPPeer
//! status entries (`status`), and whether a speaker is ready (`readiness`). The announcer in `baremetal-ccm` watches, calls these, drives
//! gobgpd through its wire adapter and writes the entries.

pub mod desired;
pub mod gobgp;
pub mod inputs;
pub mod plan;
pub mod readiness;
pub mod status;

#[cfg(test)]
mod tests;
