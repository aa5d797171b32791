//! Announcing Service addresses over BGP: the desired daemon state computed purely from the
//! cluster, and the adapter that makes a GoBGP daemon hold exactly that.

pub mod desired;
pub mod gobgp;
