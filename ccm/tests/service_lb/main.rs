//! Services of type LoadBalancer, in one test binary: the IPPool CRD's admission rules
//! (`ippool_crd`), the service-lb contract (`contract`), restarts and leadership
//! (`restart`), contention between Services and writers (`contention`), a leader whose
//! renewals hang (`leader_fence`) and chaos runs (`chaos`), each against its own apiserver.

mod chaos;
mod contention;
mod contract;
mod ippool_crd;
mod leader_fence;
mod metallb;
mod migrate;
mod restart;
