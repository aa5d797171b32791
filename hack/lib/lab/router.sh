# The router: BIRD 2 in its own namespace, one BGP session per node (a controller replica
# may run on any of them), ADD-PATH receive so it learns one path per node, and ECMP into its
# kernel table (`merge paths`) so traffic to a Service address spreads over the nodes.
# Sourced by hack/lab.
# shellcheck shell=bash

lab_bird_config() {
  cat <<EOF
router id $LAB_ROUTER_IP;
log stderr all;
protocol device {}
protocol kernel {
  ipv4 { export where source = RTS_BGP; };
  merge paths on;
}
protocol kernel {
  ipv6 { export where source = RTS_BGP; };
  merge paths on;
}
template bgp nodes {
  local $LAB_ROUTER_IP as $LAB_ROUTER_ASN;
  graceful restart on;
  debug { states, events };
  ipv4 { import all; export none; add paths rx; };
}
template bgp nodes6 {
  local $LAB_ROUTER_IP6 as $LAB_ROUTER_ASN;
  graceful restart on;
  debug { states, events };
  ipv6 { import all; export none; add paths rx; };
}
EOF
  local n
  for n in "${LAB_NODES[@]}"; do
    printf 'protocol bgp %s from nodes { neighbor %s as %s; }\n' \
      "${n//-/_}" "$(lab_node_ip "$n")" "$LAB_CLUSTER_ASN"
    printf 'protocol bgp %s_v6 from nodes6 { neighbor %s as %s; }\n' \
      "${n//-/_}" "$(lab_node_ip6 "$n")" "$LAB_CLUSTER_ASN"
  done
}

lab_router_up() {
  mkdir -p "$LAB_STATE/router"
  lab_bird_config >"$LAB_STATE/router/bird.conf"
  lab_start bird "$LAB_ROUTER_NS" bird -f -c "$LAB_STATE/router/bird.conf" -s "$LAB_STATE/router/bird.ctl"
  lab_wait 10 "BIRD (log: $LAB_LOGS/bird.log)" birdc -s "$LAB_STATE/router/bird.ctl" show status
}

lab_birdc() { birdc -s "$LAB_STATE/router/bird.ctl" "$@"; }

# lab_router_next_hops ADDRESS: the next hops of the router's kernel route to ADDRESS, sorted.
lab_router_next_hops() {
  local family=-4
  [[ $1 == *:* ]] && family=-6
  lab_ns "$LAB_ROUTER_NS" ip "$family" route show "$1" 2>/dev/null | grep -o 'via [0-9a-f.:]*' | awk '{print $2}' | sort
}
