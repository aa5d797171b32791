//! What the shipped manifests and the admin servers promise, in one test binary: exactly the
//! shipped RBAC (`manifests_rbac`), hardened workloads on free ports (`manifests_hardening`),
//! and `/metrics` only for callers the API server allows (`admin_metrics_auth`).

mod admin_metrics_auth;
mod manifests_hardening;
mod manifests_rbac;
