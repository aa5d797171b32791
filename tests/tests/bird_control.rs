//! The rig's BIRD control-socket client against a real BIRD: counts and lookups agree with
//! BIRD's static routes, on one connection, many times over.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use rig::bird::Bird;
use rig::bird_control::BirdControl;
use rig::netns::Lab;
use rig::router::RouterConfig;

#[tokio::test]
async fn one_connection_answers_counts_and_lookups_repeatedly() {
    let mut lab = Lab::new().unwrap();
    let host = lab.host("b").unwrap();
    let routes =
        ["203.0.113.0/28", "203.0.113.16/28", "2001:db8:9::/64"].map(|r| r.parse().unwrap());
    let config = RouterConfig {
        router_id: "192.0.2.1".parse().unwrap(),
        sessions: Vec::new(),
    }
    .bird_with_blackholes(&routes);
    let bird = Bird::start(&host, &config).await.unwrap();
    let mut control = BirdControl::connect(bird.socket()).await.unwrap();
    for _ in 0..50 {
        assert_eq!(control.route_count().await.unwrap(), (3, 3));
        assert!(control.has_route("203.0.113.16/28").await.unwrap());
        assert!(!control.has_route("203.0.113.32/28").await.unwrap());
    }
    let status = control.query("show status").await.unwrap();
    assert!(
        status
            .iter()
            .any(|l| l.contains("Daemon is up and running")),
        "{status:?}"
    );
}
