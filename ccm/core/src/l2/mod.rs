//! Layer-2 announcement, without I/O (design 0003): which node owns each address (owner
//! election), the frames on the wire, what the responder does with them, when an owner
//! announces, which addresses it probes first, what it does about machines outside the
//! cluster holding them, and which host settings break it.

pub mod conflict;
pub mod election;
pub mod frame;
pub mod host;
pub mod kernel_reply;
pub mod plan;
pub mod probe;
pub mod respond;
pub mod schedule;
pub mod status;
