//! Migration from other load-balancer implementations: their configuration read as plain data
//! and converted into our resources, with a report of what maps and what does not.

pub mod metallb;
