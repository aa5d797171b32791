//! The model of a gobgpd, without I/O and without protobuf: what a daemon holds as plain data
//! (`state`), the export and import policy in our naming (`policy`), a neighbor as far as we
//! configure it (`peer`), the state of each BGP session (`session`), and the planner that turns
//! the actual state and the desired one into an ordered list of daemon writes (`plan`).
//!
//! The wire adapter in `baremetal-ccm` (`announce::gobgp`) reads a daemon into this model,
//! plans with it and applies the operations; it is the only code that sees the GoBGP v4 protobuf
//! messages. Facts about gobgpd that are pure (policy names, the BGP port, the defaults it
//! applies to a neighbor) live here; see `docs/design/0001-gobgp-converge.md`.

pub mod peer;
pub mod plan;
pub mod policy;
pub mod session;
pub mod state;

pub use self::peer::PeerSpec;
pub use self::plan::{Op, PlanError, plan};
pub use self::policy::{EXPORT_POLICY_NAMES, ExportRuleError};
pub use self::session::{BfdState, LastDown, PeerStatus, SessionState};
pub use self::state::{Actual, PathKey};

use super::desired::Global;

/// Port 0 means the BGP port to gobgpd (`SetDefaultGlobalConfigValues`, and the FSM's
/// dialer for peers).
pub const BGP_PORT: u16 = 179;

/// `global` as gobgpd reports it back once started (a listen port of 0 reads back as 179).
pub fn normalized_global(global: &Global) -> Global {
    Global {
        listen_port: if global.listen_port == 0 {
            i32::from(BGP_PORT)
        } else {
            global.listen_port
        },
        ..global.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_port_of_zero_reads_back_as_the_bgp_port() {
        let global = Global {
            asn: 64512,
            router_id: "192.0.2.1".parse().expect("id"),
            listen_port: 0,
        };
        assert_eq!(normalized_global(&global).listen_port, 179);
    }
}
