//! Address management for LoadBalancer Services: pools, allocation, sharing and rebuild.
//! Pure logic: no Kubernetes types, no I/O.
//!
//! The controller turns `IPPool` resources into [`PoolSpec`]s and validates them into
//! [`Pool`]s, turns each Service into a [`ServiceRequest`], and drives one [`Allocator`]:
//! [`Allocator::rebuild`] from the Services' statuses at start-up, [`Allocator::assign`] and
//! [`Allocator::release`] as Services change, [`Allocator::set_pools`] as pools change, and
//! [`Allocator::usage`] for pool status.
//!
//! Decided semantics (design brief §4): an allocated address never moves unless its Service
//! asks for it (drops a family, requests another address, or changes its sharing so that it may
//! no longer share with an earlier co-holder); conflicts go against the later claimant in
//! creation order; memory grows with allocations, never with pool sizes.
//!
//! Messages: the `Display` of [`Pending`], [`InvalidPool`] and the other errors here is a
//! complete sentence including its cause, meant for Events and condition messages.

mod alloc;
mod assign;
mod held;
mod index;
mod pending;
mod pool;
mod range;
mod rebuild;
mod request;
mod services;
mod sharing;

#[cfg(test)]
mod tests;

pub use crate::selector::{
    RequirementSpec, Selector, SelectorError, SelectorProblem, SelectorSpec,
};
pub use alloc::{Allocator, AssignedAddress, Degraded, DuplicatePool, FamilyUsage, PoolUsage};
pub use assign::Assignment;
pub use pending::{Pending, PoolNames, Searched};
pub use pool::{
    Ineligibility, InvalidPool, Overlap, Pool, PoolProblem, PoolSpec, Scope, ScopeSpec, overlaps,
};
pub use range::{AddressRange, Family, RangeError, Span, UnknownFamily};
pub use rebuild::{Conflict, Existing, RebuildReport};
pub use request::{
    FamilyAsk, IpFamilyPolicy, Protocol, RequestError, ServiceKey, ServiceRequest, excerpt,
    parse_requested_ips, validate_sharing_key,
};
pub use sharing::Clash;
