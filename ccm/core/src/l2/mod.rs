//! Layer-2 announcement (design 0003), the decisions: which node owns each address.

pub mod election;
