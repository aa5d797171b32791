//! The decisions of baremetal-ccm, without I/O.
//!
//! This crate decides; the `baremetal-ccm` crate adapts (watches, writes, gRPC, providers,
//! the admin server). The rule: **the core has no I/O**. It depends on no Kubernetes client
//! or runtime, no async runtime and no network crate (`tests/no_io.rs` checks its dependency
//! tree), so what it computes depends only on its inputs and is tested without a cluster.
//!
//! - [`ipam`]: address pools, allocation, sharing, the rebuild from Services after a restart;
//! - [`selector`]: Kubernetes label selectors as plain data, evaluated;
//! - [`crd`]: the `IPPool` and `BGPPeer` types, their schemas and their validation;
//! - [`conditions`]: status conditions as we write them, and the bound on every message;
//! - [`duration`]: durations as Kubernetes spells them (`1.1s`), for flags and CRD fields;
//! - [`cloud_node`], [`instance`]: a Node's initialization, refresh and shutdown taint from
//!   what its provider reports;
//! - [`announce`]: the BGP announcer's inputs, one speaker's desired daemon state, the model of
//!   a gobgpd and the planner that converges one (no protobuf: the wire is the binary's), its
//!   status entries;
//! - [`l2`]: layer-2 announcement: which node owns each address (owner election), ARP and NDP
//!   frames parsed and built, the responder's decision for each frame it reads, and when an
//!   owner announces;
//! - [`service_lb`]: what the service-lb controller decides for each Service and pool;
//! - [`rendezvous`]: the stable ranking of nodes for a key (layer-2 owners, BGP next hops);
//! - [`contract`]: the finalizer, annotations, labels and taints the product and the cluster
//!   agree on;
//! - [`write`]: the one shape of a planned cluster write (a merge patch to an object or its
//!   status), which the binary's writers apply;
//! - [`migrate`]: other implementations' configuration (MetalLB's) converted into our
//!   resources, with a report of what maps and what does not.

pub mod announce;
pub mod cloud_node;
pub mod conditions;
pub mod contract;
pub mod crd;
pub mod duration;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod instance;
pub mod ipam;
pub mod l2;
pub mod migrate;
pub mod rendezvous;
pub mod selector;
pub mod service_lb;
pub mod write;
