//! "Every watch has completed its first list": one signal per watch, one wait for all of
//! them. Deciding before a watch has listed would decide on a partial view of the cluster
//! (addresses handed out twice, nodes seen as missing). `Store::wait_until_ready` wakes only
//! one of several concurrent waiters, so the controllers use this instead.

use std::sync::Arc;

use kube::runtime::watcher;
use tokio::sync::watch;

/// The watch whose first list never completed has stopped (its task ended).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("watching {what} stopped before its first list completed")]
pub(crate) struct WatchStopped {
    pub what: &'static str,
}

/// Collects one [`Listing`] per watch; [`Listings::all`] then waits for every one of them.
#[derive(Debug, Default)]
pub(crate) struct Listings {
    waiting: Vec<(&'static str, watch::Receiver<bool>)>,
}

/// The signal of one watch: marks it listed when its first list completes.
#[derive(Debug)]
pub(crate) struct Listing {
    done: watch::Sender<bool>,
}

/// Waits until every watch tracked by the [`Listings`] it came from has listed once.
/// Cheap to clone; any number of tasks may wait at once.
#[derive(Debug, Clone)]
pub(crate) struct AllListed {
    waiting: Arc<[(&'static str, watch::Receiver<bool>)]>,
}

impl Listings {
    /// Tracks one more watch, named `what` in errors and logs.
    pub(crate) fn track(&mut self, what: &'static str) -> Listing {
        let (done, waiting) = watch::channel(false);
        self.waiting.push((what, waiting));
        Listing { done }
    }

    /// The wait for the watches named `what` (among those tracked so far) only.
    pub(crate) fn only(&self, what: &[&str]) -> AllListed {
        AllListed {
            waiting: (self.waiting.iter())
                .filter(|(name, _)| what.contains(name))
                .cloned()
                .collect(),
        }
    }

    /// The wait for every watch tracked so far.
    pub(crate) fn all(self) -> AllListed {
        AllListed {
            waiting: self.waiting.into(),
        }
    }
}

impl Listing {
    /// Marks the watch listed when `event` ends its first list (later relists change nothing).
    pub(crate) fn observe<K>(&self, event: &Result<watcher::Event<K>, watcher::Error>) {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            self.done.send_replace(true);
        }
    }
}

impl AllListed {
    /// Returns once every watch has listed, or the first one that stopped before it did.
    pub(crate) async fn wait(&self) -> Result<(), WatchStopped> {
        for (what, waiting) in self.waiting.iter() {
            let mut waiting = waiting.clone();
            if waiting.wait_for(|done| *done).await.is_err() {
                return Err(WatchStopped { what });
            }
            tracing::debug!(kind = what, "listed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    type Event = Result<watcher::Event<Node>, watcher::Error>;

    #[tokio::test]
    async fn every_waiter_wakes_once_every_watch_listed() {
        let mut listings = Listings::default();
        let (nodes, pools) = (listings.track("Nodes"), listings.track("IPPools"));
        let all = listings.all();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let all = all.clone();
                tokio::spawn(async move { all.wait().await })
            })
            .collect();
        nodes.observe(&Event::Ok(watcher::Event::Init));
        nodes.observe(&Event::Ok(watcher::Event::InitDone));
        tokio::task::yield_now().await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "IPPools not listed yet"
        );
        pools.observe(&Event::Ok(watcher::Event::InitDone));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn a_watch_that_stops_before_listing_is_named() {
        let mut listings = Listings::default();
        let nodes = listings.track("Nodes");
        let services = listings.track("Services");
        let all = listings.all();
        nodes.observe(&Event::Ok(watcher::Event::InitDone));
        drop(services);
        assert_eq!(all.wait().await, Err(WatchStopped { what: "Services" }));
    }

    #[tokio::test]
    async fn a_wait_for_some_watches_needs_only_those_listed() {
        let mut listings = Listings::default();
        let nodes = listings.track("Nodes");
        let _services = listings.track("Services");
        let some = listings.only(&["Nodes"]);
        let all = listings.all();
        let waiting_all = tokio::spawn(async move { all.wait().await });
        nodes.observe(&Event::Ok(watcher::Event::InitDone));
        assert_eq!(some.wait().await, Ok(()));
        tokio::task::yield_now().await;
        assert!(!waiting_all.is_finished(), "Services not listed yet");
    }
}
