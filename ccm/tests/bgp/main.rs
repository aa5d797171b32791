//! BGP, in one test binary: the GoBGP adapter as a library against a real gobgpd and real
//! routers (`gobgp_converge`, `gobgp_resilience`, sharing `lab`), and the real binary end to
//! end in central and node-local placement (`central`, `node_local`, `resilience`, on
//! `rig::fabric`). Every test runs against BIRD and FRR unless its name says otherwise.

mod central;
mod gobgp_converge;
mod gobgp_resilience;
mod lab;
mod node_local;
mod resilience;
