//! What the `service-lb` controller decides, without I/O: which Services are ours (`class`),
//! what a Service asks for (`request`), the addresses and conditions each gets (`decide`,
//! `outcome`, `adopt` for Services another implementation addressed, `contest` for a second
//! writer), the patches that write them (`status`), each pool's status (`pool_status`), and
//! the Event reasons (`events`). The controller in `baremetal-ccm` watches, calls these and
//! writes what they return.

pub mod adopt;
pub mod class;
pub mod contest;
pub mod decide;
pub mod events;
pub mod outcome;
pub mod pool_status;
pub mod request;
pub mod status;
pub mod takeover;
