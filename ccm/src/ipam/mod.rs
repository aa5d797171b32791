//! Address management for LoadBalancer Services: pools, allocation, sharing and rebuild.
//! Pure logic: no Kubernetes types, no I/O.
