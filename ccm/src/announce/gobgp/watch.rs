//! Noticing that the daemon restarted: a background task holds a `WatchEvent` stream of peer
//! events and probes `GetBgp`; the stream ending or failing, `GetBgp` failing, or BGP
//! reported as not started after it was started, each mean the daemon lost everything, and
//! complete the restart signal. The same peer events record when each session last went
//! down, for the peer statuses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use gobgp_api_proto::api::{self, watch_event_response::Event};
use tokio::sync::watch;

use baremetal_ccm_core::announce::gobgp::{LastDown, SessionState};

use super::Client;
use super::status::{disconnect, session_state};

/// Why the caller must reconnect and converge again.
#[derive(Debug, Clone)]
pub enum RestartCause {
    /// The event stream ended: the daemon went away.
    StreamEnded,
    /// The event stream broke or could not be opened.
    StreamFailed(tonic::Status),
    /// `GetBgp` failed (gobgpd v4.8.0 answers "server stopped" after `StopBgp`).
    Unreachable(tonic::Status),
    /// `GetBgp` reports BGP not started although it had been started: a new daemon.
    NotStarted,
}

#[derive(Debug, Clone, Copy)]
struct PeerRecord {
    state: SessionState,
}

/// What the watch learned about each session.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    states: BTreeMap<IpAddr, PeerRecord>,
    last_down: BTreeMap<IpAddr, LastDown>,
    /// Sessions entering or leaving Established so far (what a converge depends on).
    transitions: u64,
}

impl Sessions {
    pub(crate) fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Whether the session with `address` is Established, as the last event said.
    pub(crate) fn established(&self, address: &IpAddr) -> bool {
        (self.states.get(address)).is_some_and(|r| r.state == SessionState::Established)
    }

    pub(crate) fn last_down(&self, address: &IpAddr) -> Option<LastDown> {
        self.last_down.get(address).cloned()
    }

    fn record(&mut self, peer: &api::Peer, at: SystemTime) {
        let Some(state) = &peer.state else { return };
        let Ok(address) = state.neighbor_address.parse::<IpAddr>() else {
            tracing::debug!(address = %state.neighbor_address, "peer event without a usable address");
            return;
        };
        let now = session_state(state.session_state);
        let before = self
            .states
            .insert(address, PeerRecord { state: now })
            .map(|r| r.state);
        let was_up = before == Some(SessionState::Established);
        if was_up != (now == SessionState::Established) {
            self.transitions += 1;
        }
        if before == Some(SessionState::Established) && now != SessionState::Established {
            let (reason, message) = disconnect(state);
            tracing::info!(peer = %address, state = ?now, reason, "BGP session went down");
            self.last_down.insert(
                address,
                LastDown {
                    at,
                    reason,
                    message,
                },
            );
        } else if now == SessionState::Established && before != Some(now) {
            tracing::info!(peer = %address, "BGP session established");
        }
    }
}

/// Shared between the daemon handle and its watch task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub sessions: Mutex<Sessions>,
    /// Set once BGP was seen (or made) started, so that "not started" means restarted.
    pub started: AtomicBool,
    /// Woken after every session event.
    pub session_event: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs until the daemon is seen restarted, then publishes why.
pub(crate) async fn run(
    mut client: Client,
    shared: Arc<Shared>,
    cause: watch::Sender<Option<RestartCause>>,
    probe_interval: Duration,
) {
    let found = watch_until_restart(&mut client, &shared, probe_interval).await;
    tracing::info!(cause = ?found, "gobgpd restarted or went away");
    cause.send_replace(Some(found));
}

async fn watch_until_restart(
    client: &mut Client,
    shared: &Shared,
    probe_interval: Duration,
) -> RestartCause {
    let request = api::WatchEventRequest {
        peer: Some(api::watch_event_request::Peer {}),
        table: None,
        batch_size: 0,
    };
    // No deadline: the stream lives as long as the daemon.
    let mut stream = match client.watch_event(tonic::Request::new(request)).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return RestartCause::StreamFailed(status),
    };
    let mut probe = tokio::time::interval(probe_interval);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(reply)) => {
                    if let Some(Event::Peer(event)) = reply.event
                        && let Some(peer) = &event.peer
                    {
                        shared.sessions().record(peer, SystemTime::now());
                        shared.session_event.notify_waiters();
                    }
                }
                Ok(None) => return RestartCause::StreamEnded,
                Err(status) => return RestartCause::StreamFailed(status),
            },
            _ = probe.tick() => {
                let mut probe_client = client.clone();
                let reply = probe_client
                    .get_bgp(super::request(api::GetBgpRequest {}))
                    .await;
                match reply.map(|r| r.into_inner().global.map_or(0, |g| g.asn)) {
                    Ok(0) if shared.started.load(Ordering::Acquire) => {
                        return RestartCause::NotStarted;
                    }
                    Ok(0) => {}
                    Ok(_) => shared.started.store(true, Ordering::Release),
                    Err(status) => return RestartCause::Unreachable(status),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gobgp_api_proto::api::peer_state;

    use super::*;

    fn event(state: peer_state::SessionState) -> api::Peer {
        api::Peer {
            state: Some(api::PeerState {
                neighbor_address: "192.0.2.254".into(),
                session_state: state as i32,
                ..api::PeerState::default()
            }),
            ..api::Peer::default()
        }
    }

    #[test]
    fn leaving_established_is_recorded_as_the_last_down() {
        let mut sessions = Sessions::default();
        let address: IpAddr = "192.0.2.254".parse().expect("address");
        let t0 = SystemTime::UNIX_EPOCH;
        sessions.record(&event(peer_state::SessionState::Active), t0);
        assert_eq!(sessions.last_down(&address), None, "never established");
        sessions.record(&event(peer_state::SessionState::Established), t0);
        let t1 = t0 + Duration::from_secs(5);
        sessions.record(&event(peer_state::SessionState::Idle), t1);
        let down = sessions.last_down(&address).expect("recorded");
        assert_eq!((down.at, down.reason), (t1, None));
        sessions.record(
            &event(peer_state::SessionState::Active),
            t1 + Duration::from_secs(1),
        );
        assert_eq!(sessions.last_down(&address).map(|d| d.at), Some(t1), "kept");
    }
}
