//! Wire-format tests. A wrong field number or type in `api/*.proto` would not
//! fail to compile; it would silently produce bytes gobgpd reads differently,
//! so these tests pin the encoding.

use prost::Message;

use crate::api::{self, attribute::Attr, nlri::Nlri};

/// The path the CCM announces for a LoadBalancer IP: 192.0.2.10/32 via
/// 198.51.100.1, origin IGP, IPv4 unicast.
fn lb_path() -> api::Path {
    api::Path {
        nlri: Some(api::Nlri {
            nlri: Some(Nlri::Prefix(api::IpAddressPrefix {
                prefix_len: 32,
                prefix: "192.0.2.10".to_owned(),
            })),
        }),
        pattrs: vec![
            api::Attribute {
                attr: Some(Attr::Origin(api::OriginAttribute { origin: 0 })),
            },
            api::Attribute {
                attr: Some(Attr::NextHop(api::NextHopAttribute {
                    next_hop: "198.51.100.1".to_owned(),
                })),
            },
        ],
        family: Some(api::Family {
            afi: api::family::Afi::Ip.into(),
            safi: api::family::Safi::Unicast.into(),
        }),
        ..Default::default()
    }
}

/// Derived by hand from the field numbers in api/*.proto (tag byte =
/// field_number << 3 | wire_type, wire type 0 = varint, 2 = length-delimited).
/// The same bytes are produced by the upstream Go types (`add_path_request`
/// in upstream_go.hex).
#[rustfmt::skip]
const LB_PATH: &[u8] = &[
    // Path.nlri (1, LEN 16) -> NLRI.prefix (1, LEN 14) -> IPAddressPrefix
    0x0a, 0x10, 0x0a, 0x0e,
        0x08, 0x20,                               // prefix_len (1) = 32
        0x12, 0x0a, b'1', b'9', b'2', b'.', b'0', // prefix (2) = "192.0.2.10"
        b'.', b'2', b'.', b'1', b'0',
    // Path.pattrs (2, LEN 2) -> Attribute.origin (2, LEN 0): an empty
    // OriginAttribute (IGP = 0) that is still present on the wire
    0x12, 0x02, 0x12, 0x00,
    // Path.pattrs (2, LEN 16) -> Attribute.next_hop (4, LEN 14) -> NextHopAttribute
    0x12, 0x10, 0x22, 0x0e,
        0x0a, 0x0c, b'1', b'9', b'8', b'.', b'5', b'1', // next_hop (1)
        b'.', b'1', b'0', b'0', b'.', b'1',
    // Path.family (9, LEN 4): afi (1) = AFI_IP, safi (2) = SAFI_UNICAST
    0x4a, 0x04, 0x08, 0x01, 0x10, 0x01,
];

#[test]
fn path_encodes_to_hand_derived_bytes() {
    assert_eq!(lb_path().encode_to_vec(), LB_PATH);
}

#[test]
fn path_decodes_from_hand_derived_bytes() {
    let path = api::Path::decode(LB_PATH).expect("valid Path");
    assert_eq!(path, lb_path());
    // The empty origin attribute must survive as Some(..), not vanish.
    assert_eq!(
        path.pattrs[0].attr,
        Some(Attr::Origin(api::OriginAttribute { origin: 0 }))
    );
}

#[test]
fn add_path_request_wraps_path_in_field_3() {
    let req = api::AddPathRequest {
        table_type: api::TableType::Global.into(),
        vrf_id: String::new(),
        path: Some(lb_path()),
    };
    let mut expected = vec![
        0x08, 0x01, // table_type (1) = TABLE_TYPE_GLOBAL
        0x1a, 0x2e, // path (3), LEN 46
    ];
    expected.extend_from_slice(LB_PATH);
    assert_eq!(req.encode_to_vec(), expected);
}

#[test]
fn peer_state_session_and_admin_state_numbers() {
    // Peer.state (5, LEN 4) -> PeerState.session_state (13, varint) = 6,
    // admin_state (15, varint) = 3. Tags: 13 << 3 = 0x68, 15 << 3 = 0x78.
    let bytes = [0x2a, 0x04, 0x68, 0x06, 0x78, 0x03];
    let peer = api::Peer::decode(&bytes[..]).expect("valid Peer");
    let state = peer.state.expect("state present");
    assert_eq!(
        state.session_state(),
        api::peer_state::SessionState::Established
    );
    assert_eq!(state.admin_state(), api::peer_state::AdminState::PfxCt);
}

#[test]
fn policy_prefix_uses_non_sequential_numbers() {
    let prefix = api::Prefix {
        ip_prefix: "10.0.0.0/8".to_owned(),
        mask_length_min: 8,
        mask_length_max: 32,
        rtc_prefix: "x".to_owned(),
    };
    let mut expected = vec![0x0a, 0x0a]; // ip_prefix (1), LEN 10
    expected.extend_from_slice(b"10.0.0.0/8");
    expected.extend_from_slice(&[0x10, 0x08]); // mask_length_min (2) = 8
    expected.extend_from_slice(&[0x18, 0x20]); // mask_length_max (3) = 32
    expected.extend_from_slice(&[0x22, 0x01, b'x']); // rtc_prefix (4)
    assert_eq!(prefix.encode_to_vec(), expected);
}

#[test]
fn omitted_oneof_variants_decode_as_unset() {
    // Attribute.aigp (20, LEN 0); tag 20 << 3 | 2 = 162 = varint a2 01.
    // We do not model AIGP, so the attribute decodes with no variant.
    let attr = api::Attribute::decode(&[0xa2, 0x01, 0x00][..]).expect("valid Attribute");
    assert_eq!(attr.attr, None);

    // NLRI.evpn_macadv (6, LEN 0) likewise.
    let nlri = api::Nlri::decode(&[0x32, 0x00][..]).expect("valid NLRI");
    assert_eq!(nlri.nlri, None);
}

#[test]
fn watch_event_table_is_field_3() {
    let event = api::WatchEventResponse::decode(&[0x1a, 0x00][..]).expect("valid event");
    assert_eq!(
        event.event,
        Some(api::watch_event_response::Event::Table(
            api::watch_event_response::TableEvent::default()
        ))
    );
}

/// Samples encoded by the upstream gobgp v4.8.0 Go types
/// (testdata/upstream-golden/main.go), one "name hex" pair per line.
const UPSTREAM_GO: &str = include_str!("upstream_go.hex");

fn upstream(name: &str) -> Vec<u8> {
    let hex = UPSTREAM_GO
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name:?} in upstream_go.hex"));
    assert!(hex.len() % 2 == 0, "odd hex length for {name}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Decodes an upstream sample and re-encodes it. prost drops fields it does
/// not know, so identical bytes prove that every field the sample sets exists
/// here with the same number and wire type.
fn round_trip<M: Message + Default>(name: &str) -> M {
    let bytes = upstream(name);
    let msg = M::decode(bytes.as_slice()).expect("upstream bytes decode");
    assert_eq!(msg.encode_to_vec(), bytes, "re-encoding {name} differs");
    msg
}

#[test]
fn upstream_add_path_request_matches_hand_derived_bytes() {
    let req: api::AddPathRequest = round_trip("add_path_request");
    assert_eq!(req.path, Some(lb_path()));
}

#[test]
fn upstream_path_with_all_modelled_attributes() {
    let event: api::WatchEventResponse = round_trip("watch_table_event");
    let Some(api::watch_event_response::Event::Table(table)) = event.event else {
        panic!("expected a table event, got {event:?}");
    };
    let path = &table.paths[0];
    assert!(path.best);
    assert_eq!(path.neighbor_ip, "2001:db8::1");
    assert_eq!(path.source_asn, 65001);
    assert_eq!(path.identifier, 3);
    assert_eq!(path.local_identifier, 4);
    assert_eq!(path.age.map(|t| t.seconds), Some(1_700_000_000));
    assert_eq!(path.pattrs.len(), 16);
    assert!(path.pattrs.iter().all(|a| a.attr.is_some()));
    assert!(path.pattrs.iter().any(|a| matches!(
        &a.attr,
        Some(Attr::LargeCommunities(lc)) if lc.communities[0].global_admin == 4_200_000_000
    )));
    assert!(path.pattrs.iter().any(|a| matches!(
        &a.attr,
        Some(Attr::MpReach(mp)) if mp.next_hops == ["2001:db8::1", "fe80::1"]
    )));
}

#[test]
fn upstream_peer_with_all_fields() {
    let event: api::WatchEventResponse = round_trip("watch_peer_event");
    let Some(api::watch_event_response::Event::Peer(pe)) = event.event else {
        panic!("expected a peer event, got {event:?}");
    };
    assert_eq!(
        pe.r#type(),
        api::watch_event_response::peer_event::Type::State
    );
    let peer = pe.peer.expect("peer");
    let state = peer.state.expect("state");
    assert_eq!(
        state.session_state(),
        api::peer_state::SessionState::Established
    );
    assert_eq!(
        state.disconnect_reason(),
        api::peer_state::DisconnectReason::BadPeerAs
    );
    assert_eq!(state.remote_cap.len(), 14);
    assert!(state.remote_cap.iter().all(|c| c.cap.is_some()));
    let bfd = peer.bfd.expect("bfd");
    assert_eq!(
        (bfd.desired_minimum_tx_interval, bfd.detection_multiplier),
        (300_000, 3)
    );
    let send_max = peer.afi_safis[0]
        .add_paths
        .as_ref()
        .and_then(|a| a.config.as_ref())
        .map(|c| c.send_max);
    assert_eq!(send_max, Some(8));
}

#[test]
fn upstream_global() {
    let resp: api::GetBgpResponse = round_trip("global");
    let global = resp.global.expect("global");
    assert_eq!(global.asn, 64512);
    assert_eq!(global.listen_port, -1);
    assert_eq!(global.bind_to_device, "eth0");
}

#[test]
fn upstream_policy_types() {
    let resp: api::ListPolicyAssignmentResponse = round_trip("policy_assignment");
    let assignment = resp.assignment.expect("assignment");
    assert_eq!(assignment.direction(), api::PolicyDirection::Export);
    assert_eq!(assignment.default_action(), api::RouteAction::Reject);
    let actions = assignment.policies[0].statements[0]
        .actions
        .clone()
        .expect("actions");
    assert_eq!(actions.local_pref.map(|a| a.value), Some(300));
    assert_eq!(actions.med.map(|m| m.value), Some(-5));

    let set: api::ListDefinedSetResponse = round_trip("defined_set");
    let set = set.defined_set.expect("defined_set");
    assert_eq!(set.defined_type(), api::DefinedType::Prefix);
    assert_eq!(set.prefixes[0].mask_length_max, 32);
}

#[test]
fn upstream_requests() {
    let _: api::WatchEventRequest = round_trip("watch_event_request");
    let _: api::ListPathRequest = round_trip("list_path_request");
    let _: api::DeletePathRequest = round_trip("delete_path_request");
    let req: api::ResetPeerRequest = round_trip("reset_peer_request");
    assert_eq!(req.direction(), api::reset_peer_request::Direction::Both);
}
