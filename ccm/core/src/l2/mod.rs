//! Layer-2 announcement, without I/O (design 0003): which node owns each address (owner
//! election), the frames on the wire, what the responder does with them, and when an owner
//! announces.

pub mod election;
pub mod frame;
pub mod plan;
pub mod respond;
pub mod schedule;
