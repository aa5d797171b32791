// Prints protobuf encodings of sample messages built with the upstream gobgp
// v4.8.0 Go types, one "name hex" pair per line. The output is checked in as
// ../../src/tests/upstream_go.hex and decoded by the crate's tests to verify
// wire compatibility of our own .proto subset. Regenerate with:
//
//	GOFLAGS=-mod=mod go run . > ../../src/tests/upstream_go.hex
package main

import (
	"encoding/hex"
	"fmt"

	api "github.com/osrg/gobgp/v4/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func out(name string, m proto.Message) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s\n", name, hex.EncodeToString(b))
}

func main() {
	v4u := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	v6u := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	path := &api.Path{
		Nlri: &api.NLRI{Nlri: &api.NLRI_Prefix{Prefix: &api.IPAddressPrefix{PrefixLen: 32, Prefix: "192.0.2.10"}}},
		Pattrs: []*api.Attribute{
			{Attr: &api.Attribute_Origin{Origin: &api.OriginAttribute{Origin: 0}}},
			{Attr: &api.Attribute_NextHop{NextHop: &api.NextHopAttribute{NextHop: "198.51.100.1"}}},
		},
		Family: v4u,
	}
	out("add_path_request", &api.AddPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Path: path})

	// A received IPv6 path with most attribute kinds we model.
	v6path := &api.Path{
		Nlri: &api.NLRI{Nlri: &api.NLRI_Prefix{Prefix: &api.IPAddressPrefix{PrefixLen: 128, Prefix: "2001:db8::10"}}},
		Pattrs: []*api.Attribute{
			{Attr: &api.Attribute_Origin{Origin: &api.OriginAttribute{Origin: 2}}},
			{Attr: &api.Attribute_AsPath{AsPath: &api.AsPathAttribute{Segments: []*api.AsSegment{{Type: api.AsSegment_TYPE_AS_SEQUENCE, Numbers: []uint32{65001, 4200000000}}}}}},
			{Attr: &api.Attribute_MultiExitDisc{MultiExitDisc: &api.MultiExitDiscAttribute{Med: 50}}},
			{Attr: &api.Attribute_LocalPref{LocalPref: &api.LocalPrefAttribute{LocalPref: 200}}},
			{Attr: &api.Attribute_AtomicAggregate{AtomicAggregate: &api.AtomicAggregateAttribute{}}},
			{Attr: &api.Attribute_Aggregator{Aggregator: &api.AggregatorAttribute{Asn: 65001, Address: "192.0.2.1"}}},
			{Attr: &api.Attribute_Communities{Communities: &api.CommunitiesAttribute{Communities: []uint32{65001<<16 | 100}}}},
			{Attr: &api.Attribute_OriginatorId{OriginatorId: &api.OriginatorIdAttribute{Id: "192.0.2.2"}}},
			{Attr: &api.Attribute_ClusterList{ClusterList: &api.ClusterListAttribute{Ids: []string{"192.0.2.3"}}}},
			{Attr: &api.Attribute_MpReach{MpReach: &api.MpReachNLRIAttribute{Family: v6u, NextHops: []string{"2001:db8::1", "fe80::1"},
				Nlris: []*api.NLRI{{Nlri: &api.NLRI_Prefix{Prefix: &api.IPAddressPrefix{PrefixLen: 128, Prefix: "2001:db8::10"}}}}}}},
			{Attr: &api.Attribute_MpUnreach{MpUnreach: &api.MpUnreachNLRIAttribute{Family: v6u,
				Nlris: []*api.NLRI{{Nlri: &api.NLRI_LabeledPrefix{LabeledPrefix: &api.LabeledIPAddressPrefix{Labels: []uint32{16, 17}, PrefixLen: 64, Prefix: "2001:db8:1::"}}}}}}},
			{Attr: &api.Attribute_ExtendedCommunities{ExtendedCommunities: &api.ExtendedCommunitiesAttribute{Communities: []*api.ExtendedCommunity{
				{Extcom: &api.ExtendedCommunity_TwoOctetAsSpecific{TwoOctetAsSpecific: &api.TwoOctetAsSpecificExtended{IsTransitive: true, SubType: 2, Asn: 65001, LocalAdmin: 7}}},
				{Extcom: &api.ExtendedCommunity_Ipv4AddressSpecific{Ipv4AddressSpecific: &api.IPv4AddressSpecificExtended{IsTransitive: true, SubType: 3, Address: "192.0.2.4", LocalAdmin: 8}}},
				{Extcom: &api.ExtendedCommunity_FourOctetAsSpecific{FourOctetAsSpecific: &api.FourOctetAsSpecificExtended{IsTransitive: false, SubType: 2, Asn: 4200000000, LocalAdmin: 9}}},
				{Extcom: &api.ExtendedCommunity_Opaque{Opaque: &api.OpaqueExtended{IsTransitive: true, Value: []byte{1, 2, 3}}}},
				{Extcom: &api.ExtendedCommunity_Unknown{Unknown: &api.UnknownExtended{Type: 0x80, Value: []byte{4, 5}}}},
			}}}},
			{Attr: &api.Attribute_As4Path{As4Path: &api.As4PathAttribute{Segments: []*api.AsSegment{{Type: api.AsSegment_TYPE_AS_SET, Numbers: []uint32{1, 2}}}}}},
			{Attr: &api.Attribute_As4Aggregator{As4Aggregator: &api.As4AggregatorAttribute{Asn: 4200000000, Address: "192.0.2.5"}}},
			{Attr: &api.Attribute_LargeCommunities{LargeCommunities: &api.LargeCommunitiesAttribute{Communities: []*api.LargeCommunity{{GlobalAdmin: 4200000000, LocalData1: 1, LocalData2: 2}}}}},
			{Attr: &api.Attribute_Unknown{Unknown: &api.UnknownAttribute{Flags: 0xc0, Type: 99, Value: []byte{9}}}},
		},
		Age:                &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5},
		Best:               true,
		IsWithdraw:         false,
		Validation:         &api.Validation{State: api.ValidationState_VALIDATION_STATE_NOT_FOUND, Reason: api.Validation_REASON_ASN, Matched: []*api.Roa{{Asn: 65001, Prefixlen: 32, Maxlen: 48, Prefix: "2001:db8::", Conf: &api.RPKIConf{Address: "192.0.2.9", RemotePort: 323}}}},
		NoImplicitWithdraw: true,
		Family:             v6u,
		SourceAsn:          65001,
		SourceId:           "192.0.2.7",
		Filtered:           true,
		Stale:              true,
		IsFromExternal:     true,
		NeighborIp:         "2001:db8::1",
		Uuid:               []byte{0xde, 0xad},
		IsNexthopInvalid:   true,
		Identifier:         3,
		LocalIdentifier:    4,
		NlriBinary:         []byte{0x80, 0x20},
		PattrsBinary:       [][]byte{{0x40, 0x01, 0x01, 0x00}},
		SendMaxFiltered:    true,
	}
	out("watch_table_event", &api.WatchEventResponse{Event: &api.WatchEventResponse_Table{Table: &api.WatchEventResponse_TableEvent{Paths: []*api.Path{v6path}}}})

	policy := &api.PolicyAssignment{
		Name:      "global",
		Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies: []*api.Policy{{
			Name: "lb-export",
			Statements: []*api.Statement{{
				Name: "lb-export-stmt",
				Conditions: &api.Conditions{
					PrefixSet:         &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "lb-prefixes"},
					NeighborSet:       &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: "n"},
					AsPathLength:      &api.AsPathLength{Type: api.Comparison_COMPARISON_LE, Length: 3},
					AsPathSet:         &api.MatchSet{Type: api.MatchSet_TYPE_ALL, Name: "a"},
					CommunitySet:      &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "c"},
					ExtCommunitySet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "e"},
					RpkiResult:        api.ValidationState_VALIDATION_STATE_VALID,
					RouteType:         api.Conditions_ROUTE_TYPE_LOCAL,
					LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "l"},
					NextHopInList:     []string{"192.0.2.1/32"},
					AfiSafiIn:         []*api.Family{v4u, v6u},
					CommunityCount:    &api.CommunityCount{Type: api.Comparison_COMPARISON_GE, Count: 1},
					Origin:            api.OriginType_ORIGIN_TYPE_INCOMPLETE,
					LocalPrefEq:       &api.LocalPrefEq{Value: 100},
					MedEq:             &api.MedEq{Value: 10},
				},
				Actions: &api.Actions{
					RouteAction:    api.RouteAction_ROUTE_ACTION_ACCEPT,
					Community:      &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: []string{"65001:100"}},
					Med:            &api.MedAction{Type: api.MedAction_TYPE_REPLACE, Value: -5},
					AsPrepend:      &api.AsPrependAction{Asn: 65001, Repeat: 2, UseLeftMost: true},
					ExtCommunity:   &api.CommunityAction{Type: api.CommunityAction_TYPE_REMOVE, Communities: []string{"rt:65001:1"}},
					Nexthop:        &api.NexthopAction{Address: "192.0.2.1", Self: true, Unchanged: true, PeerAddress: true},
					LocalPref:      &api.LocalPrefAction{Value: 300},
					LargeCommunity: &api.CommunityAction{Type: api.CommunityAction_TYPE_REPLACE, Communities: []string{"65001:1:2"}},
					OriginAction:   &api.OriginAction{Origin: api.OriginType_ORIGIN_TYPE_IGP},
				},
			}},
		}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}
	out("policy_assignment", &api.ListPolicyAssignmentResponse{Assignment: policy})

	out("defined_set", &api.ListDefinedSetResponse{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX,
		Name:        "lb-prefixes",
		List:        []string{"x"},
		Prefixes:    []*api.Prefix{{IpPrefix: "192.0.2.0/24", MaskLengthMin: 24, MaskLengthMax: 32, RtcPrefix: "r"}},
	}})

	out("global", &api.GetBgpResponse{Global: &api.Global{
		Asn:                   64512,
		RouterId:              "192.0.2.254",
		ListenPort:            -1,
		ListenAddresses:       []string{"0.0.0.0", "::"},
		Families:              []uint32{0, 1},
		UseMultiplePaths:      true,
		RouteSelectionOptions: &api.RouteSelectionOptionsConfig{AlwaysCompareMed: true, IgnoreAsPathLength: true, ExternalCompareRouterId: true, AdvertiseInactiveRoutes: true, EnableAigp: true, IgnoreNextHopIgpMetric: true, DisableBestPathSelection: true},
		DefaultRouteDistance:  &api.DefaultRouteDistance{ExternalRouteDistance: 20, InternalRouteDistance: 200},
		Confederation:         &api.Confederation{Enabled: true, Identifier: 65000, MemberAsList: []uint32{65001, 65002}},
		GracefulRestart: &api.GracefulRestart{Enabled: true, RestartTime: 120, HelperOnly: true, DeferralTime: 360, NotificationEnabled: true, LonglivedEnabled: true,
			StaleRoutesTime: 300, PeerRestartTime: 90, PeerRestarting: true, LocalRestarting: true, Mode: "restarting"},
		BindToDevice: "eth0",
	}})

	peer := &api.Peer{
		ApplyPolicy: &api.ApplyPolicy{ImportPolicy: &api.PolicyAssignment{Name: "p", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT, DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT}},
		Conf: &api.PeerConf{AuthPassword: "pw", Description: "d", LocalAsn: 64512, NeighborAddress: "192.0.2.1", PeerAsn: 65001, PeerGroup: "g",
			Type: api.PeerType_PEER_TYPE_EXTERNAL, RemovePrivate: api.RemovePrivate_REMOVE_PRIVATE_REPLACE, RouteFlapDamping: true, SendCommunity: 3,
			NeighborInterface: "eth1", Vrf: "v", AllowOwnAsn: 1, ReplacePeerAsn: true, AdminDown: true, SendSoftwareVersion: true, AllowAspathLoopLocal: true},
		EbgpMultihop:   &api.EbgpMultihop{Enabled: true, MultihopTtl: 2},
		RouteReflector: &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: "192.0.2.8"},
		State: &api.PeerState{AuthPassword: "pw", Description: "d", LocalAsn: 64512,
			Messages:        &api.Messages{Received: &api.Message{Notification: 1, Update: 2, Open: 3, Keepalive: 4, Refresh: 5, Discarded: 6, Total: 7, WithdrawUpdate: 8, WithdrawPrefix: 9}, Sent: &api.Message{Update: 11}},
			NeighborAddress: "192.0.2.1", PeerAsn: 65001, PeerGroup: "g", Type: api.PeerType_PEER_TYPE_EXTERNAL,
			Queues: &api.Queues{Input: 1, Output: 2}, RemovePrivate: api.RemovePrivate_REMOVE_PRIVATE_ALL, RouteFlapDamping: true, SendCommunity: 3,
			SessionState: api.PeerState_SESSION_STATE_ESTABLISHED, AdminState: api.PeerState_ADMIN_STATE_PFX_CT, OutQ: 4, Flops: 5,
			RemoteCap: []*api.Capability{
				{Cap: &api.Capability_FourOctetAsn{FourOctetAsn: &api.FourOctetASNCapability{Asn: 65001}}},
				{Cap: &api.Capability_MultiProtocol{MultiProtocol: &api.MultiProtocolCapability{Family: v6u}}},
				{Cap: &api.Capability_RouteRefresh{RouteRefresh: &api.RouteRefreshCapability{}}},
				{Cap: &api.Capability_AddPath{AddPath: &api.AddPathCapability{Tuples: []*api.AddPathCapabilityTuple{{Family: v4u, Mode: api.AddPathCapabilityTuple_MODE_BOTH}}}}},
				{Cap: &api.Capability_GracefulRestart{GracefulRestart: &api.GracefulRestartCapability{Flags: 8, Time: 120, Tuples: []*api.GracefulRestartCapabilityTuple{{Family: v4u, Flags: 128}}}}},
				{Cap: &api.Capability_ExtendedNexthop{ExtendedNexthop: &api.ExtendedNexthopCapability{Tuples: []*api.ExtendedNexthopCapabilityTuple{{NlriFamily: v4u, NexthopFamily: v6u}}}}},
				{Cap: &api.Capability_LongLivedGracefulRestart{LongLivedGracefulRestart: &api.LongLivedGracefulRestartCapability{Tuples: []*api.LongLivedGracefulRestartCapabilityTuple{{Family: v4u, Flags: 1, Time: 2}}}}},
				{Cap: &api.Capability_Fqdn{Fqdn: &api.FqdnCapability{HostName: "h", DomainName: "dn"}}},
				{Cap: &api.Capability_SoftwareVersion{SoftwareVersion: &api.SoftwareVersionCapability{SoftwareVersion: "gobgp"}}},
				{Cap: &api.Capability_EnhancedRouteRefresh{EnhancedRouteRefresh: &api.EnhancedRouteRefreshCapability{}}},
				{Cap: &api.Capability_RouteRefreshCisco{RouteRefreshCisco: &api.RouteRefreshCiscoCapability{}}},
				{Cap: &api.Capability_CarryingLabelInfo{CarryingLabelInfo: &api.CarryingLabelInfoCapability{}}},
				{Cap: &api.Capability_ExtendedMessage{ExtendedMessage: &api.ExtendedMessageCapability{}}},
				{Cap: &api.Capability_Unknown{Unknown: &api.UnknownCapability{Code: 200, Value: []byte{1}}}},
			},
			LocalCap:          []*api.Capability{{Cap: &api.Capability_FourOctetAsn{FourOctetAsn: &api.FourOctetASNCapability{Asn: 64512}}}},
			RouterId:          "192.0.2.1",
			DisconnectReason:  api.PeerState_DISCONNECT_REASON_BAD_PEER_AS,
			DisconnectMessage: "bad",
			BfdState: &api.BfdPeerState{SessionState: api.BfdSessionState_BFD_SESSION_STATE_UP, RemoteSessionState: api.BfdSessionState_BFD_SESSION_STATE_INIT,
				LastFailureTime: 1, FailureTransitions: 2, LocalDiscriminator: 3, RemoteDiscriminator: 4,
				LocalDiagnosticCode: api.BfdDiagnosticCode_BFD_DIAGNOSTIC_CODE_PATH_DOWN, RemoteDiagnosticCode: api.BfdDiagnosticCode_BFD_DIAGNOSTIC_CODE_ECHO_FAILED,
				RemoteMinimumReceiveInterval: 300000, BfdAsync: &api.BfdAsyncCounters{LastPacketTransmitted: 1, LastPacketReceived: 2, TransmittedPackets: 3, ReceivedPackets: 4}},
		},
		Timers: &api.Timers{
			Config: &api.TimersConfig{ConnectRetry: 5, HoldTime: 90, KeepaliveInterval: 30, MinimumAdvertisementInterval: 1, IdleHoldTimeAfterReset: 2},
			State:  &api.TimersState{ConnectRetry: 5, HoldTime: 90, KeepaliveInterval: 30, MinimumAdvertisementInterval: 1, NegotiatedHoldTime: 60, Uptime: &timestamppb.Timestamp{Seconds: 1700000000}, Downtime: &timestamppb.Timestamp{Seconds: 1600000000, Nanos: 1}},
		},
		Transport:       &api.Transport{LocalAddress: "192.0.2.254", LocalPort: 1179, MtuDiscovery: true, PassiveMode: true, RemoteAddress: "192.0.2.1", RemotePort: 179, TcpMss: 1400, BindInterface: "eth1", IpTos: 192},
		RouteServer:     &api.RouteServer{RouteServerClient: true, SecondaryRoute: true},
		GracefulRestart: &api.GracefulRestart{Enabled: true, RestartTime: 120},
		AfiSafis: []*api.AfiSafi{{
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}, State: &api.MpGracefulRestartState{Enabled: true, Received: true, Advertised: true, EndOfRibReceived: true, EndOfRibSent: true, Running: true}},
			Config:            &api.AfiSafiConfig{Family: v6u, Enabled: true},
			State:             &api.AfiSafiState{Family: v6u, Enabled: true, Received: 1, Accepted: 2, Advertised: 3},
			ApplyPolicy:       &api.ApplyPolicy{ExportPolicy: &api.PolicyAssignment{Name: "x", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT}},
			RouteSelectionOptions: &api.RouteSelectionOptions{Config: &api.RouteSelectionOptionsConfig{AlwaysCompareMed: true, DisableBestPathSelection: true},
				State: &api.RouteSelectionOptionsState{IgnoreAsPathLength: true, IgnoreNextHopIgpMetric: true, ExternalCompareRouterId: true, AdvertiseInactiveRoutes: true, EnableAigp: true}},
			UseMultiplePaths: &api.UseMultiplePaths{Config: &api.UseMultiplePathsConfig{Enabled: true}, State: &api.UseMultiplePathsState{Enabled: true},
				Ebgp: &api.Ebgp{Config: &api.EbgpConfig{AllowMultipleAsn: true, MaximumPaths: 8}, State: &api.EbgpState{AllowMultipleAsn: true, MaximumPaths: 4}},
				Ibgp: &api.Ibgp{Config: &api.IbgpConfig{MaximumPaths: 2}, State: &api.IbgpState{MaximumPaths: 1}}},
			PrefixLimits:             &api.PrefixLimit{Family: v6u, MaxPrefixes: 1000, ShutdownThresholdPct: 80},
			RouteTargetMembership:    &api.RouteTargetMembership{Config: &api.RouteTargetMembershipConfig{DeferralTime: 1}, State: &api.RouteTargetMembershipState{DeferralTime: 2}},
			LongLivedGracefulRestart: &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{Enabled: true, RestartTime: 3}, State: &api.LongLivedGracefulRestartState{Enabled: true, Received: true, Advertised: true, PeerRestartTime: 4, PeerRestartTimerExpired: true, Running: true}},
			AddPaths:                 &api.AddPaths{Config: &api.AddPathsConfig{Receive: true, SendMax: 8}, State: &api.AddPathsState{Receive: true, SendMax: 2}},
		}},
		TtlSecurity: &api.TtlSecurity{Enabled: true, TtlMin: 254},
		Bfd:         &api.BfdPeerConfig{Enabled: true, Port: 3784, DesiredMinimumTxInterval: 300000, RequiredMinimumReceive: 300000, DetectionMultiplier: 3},
	}
	out("watch_peer_event", &api.WatchEventResponse{Event: &api.WatchEventResponse_Peer{Peer: &api.WatchEventResponse_PeerEvent{Type: api.WatchEventResponse_PeerEvent_TYPE_STATE, Peer: peer}}})

	out("watch_event_request", &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}, Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_TYPE_BEST, Init: true, PeerAddress: "192.0.2.1", PeerGroup: "g"}}}, BatchSize: 100})
	out("list_path_request", &api.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: "192.0.2.1", Family: v4u,
		Prefixes: []*api.TableLookupPrefix{{Prefix: "192.0.2.0/24", Type: api.TableLookupPrefix_TYPE_LONGER, Rd: "1:1"}}, SortType: api.ListPathRequest_SORT_TYPE_PREFIX,
		EnableFiltered: true, EnableNlriBinary: true, EnableAttributeBinary: true, EnableOnlyBinary: true, BatchSize: 1000})
	out("delete_path_request", &api.DeletePathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, VrfId: "v", Family: v4u, Path: path, Uuid: []byte{1, 2}})
	out("reset_peer_request", &api.ResetPeerRequest{Address: "192.0.2.1", Communication: "bye", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_BOTH})
}
