//! Layer-2 announcement, without I/O (design 0003): the frames on the wire and what the
//! responder does with them.

pub mod frame;
pub mod respond;
