//! Layer 2: the speaker answers ARP and NDP for the addresses of `mode: l2` pools its node
//! owns (docs/design/0003-layer2.md): who the speakers are (membership, its keys), what the node can
//! announce on (links), the host settings that break it (host), the sockets and the
//! responder of each interface with its reply thread (fastpath), and the supervisor that
//! plans and hands out the work (run); and the controller's side: the observer that writes what the operator sees (status).

pub(crate) mod bpf;
pub(crate) mod fastpath;
pub(crate) mod host;
pub(crate) mod inkernel;
pub(crate) mod keys;
pub(crate) mod links;
pub(crate) mod membership;
pub(crate) mod metrics;
pub(crate) mod responder;
pub(crate) mod run;
pub(crate) mod socket;
pub(crate) mod status;

#[cfg(test)]
mod tests;
