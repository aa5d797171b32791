//! Frees the addresses of Services that disappeared without being released: deleted after
//! their finalizer was removed by hand, or deleted while the watch was relisting.

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::controller::Context;
use super::watches::Gone;
use crate::ipam::ServiceKey;

/// Runs until the Service watch stops sending.
pub(super) async fn release(ctx: Arc<Context>, mut gone: mpsc::UnboundedReceiver<Gone>) {
    if ctx.ready().await.is_err() {
        return;
    }
    while let Some(event) = gone.recv().await {
        let vanished: Vec<ServiceKey> = match event {
            Gone::Service(key) => vec![key],
            Gone::Relisted => (ctx.lock().holders().into_iter())
                .filter(|key| {
                    ctx.services
                        .get(&ObjectRef::new(&key.name).within(&key.namespace))
                        .is_none()
                })
                .collect(),
        };
        let pending = {
            let mut decider = ctx.lock();
            let mut freed = Vec::new();
            let mut services = 0;
            for key in &vanished {
                let addresses = decider.release_key(key);
                services += usize::from(!addresses.is_empty());
                freed.extend(addresses);
            }
            if freed.is_empty() {
                continue;
            }
            tracing::info!(services, "freed the addresses of Services that vanished");
            decider.to_wake(&freed)
        };
        ctx.pools_dirty.notify_one();
        ctx.wake(pending);
    }
}
