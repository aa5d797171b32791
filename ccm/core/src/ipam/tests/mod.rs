//! Narrative tests of the allocator's rules, and property tests against a reference model.

mod allocation;
mod dual_stack;
mod fixtures;
mod model;
mod pools;
mod properties;
mod rebuild;
mod sharing;
