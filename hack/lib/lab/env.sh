# The lab's names, addresses and paths: the one place they are set. Sourced by hack/lab.
# shellcheck shell=bash

# Everything the lab creates carries this prefix (network namespaces, bridge, cgroups), so
# `hack/lab down` removes exactly what is the lab's and nothing of anyone else's.
LAB=bmlab
LAB_STATE=${BAREMETAL_CCM_LAB_STATE:-/var/lib/baremetal-ccm-lab}
LAB_BRIDGE=${LAB}0
LAB_NODES=(lab-n1 lab-n2 lab-n3)
# The nodes that get the control-plane role label (kubeadm sets it on its control-plane
# nodes): the shipped controller DaemonSet selects them, so two controller replicas run.
LAB_CONTROL_PLANE_NODES=(lab-n1 lab-n2)

# The lab network: the host side of the bridge runs the control plane; nodes and the router's
# uplink sit on the same layer-2 segment, the client behind the router.
# Dual-stack: every address has an IPv6 twin in fd42::/16 (unique local, only in the lab).
LAB_HOST_IP=10.250.0.1
LAB_HOST_IP6=fd42:250::1
LAB_PREFIX_LEN=24
LAB_ROUTER_IP=10.250.0.2
LAB_ROUTER_IP6=fd42:250::2
LAB_CLIENT_NET=10.250.1.0/24
LAB_ROUTER_CLIENT_IP=10.250.1.1
LAB_ROUTER_CLIENT_IP6=fd42:251::1
LAB_CLIENT_IP=10.250.1.2
LAB_CLIENT_IP6=fd42:251::2
LAB_CLUSTER_CIDR=10.244.0.0/16,fd42:244::/56
LAB_SERVICE_CIDR=10.96.0.0/16,fd42:96::/112
LAB_KUBERNETES_SVC_IP=10.96.0.1
LAB_APISERVER_PORT=6443
LAB_ETCD_PORT=2379
LAB_ETCD_PEER_PORT=2380
# Documentation ranges, present only inside the lab's namespaces and blackholed in the host.
LAB_POOL_V4=203.0.113.64/26
LAB_POOL_V6=2001:db8:113::/120
# The layer-2 pool: addresses on the bridge's own subnets, above every address the lab gives
# (host .1, router .2, nodes .11–.13), answered by the owning node's speaker (ARP, NDP); no
# interface holds them and nothing routes them. The router namespace sits on the same
# segment and is the layer-2 client: its kernel resolves them like any host's.
LAB_L2_POOL_V4=10.250.0.240-10.250.0.249
LAB_L2_POOL_V6=fd42:250::f0-fd42:250::ff
# The L2 Service's addresses (pinned in demo.yaml): one node owns both and the same node
# succeeds it for both (rank by sha256 of "node#address", docs/l2.md: lab-n3, then lab-n1),
# so crashing the owner moves both families at once.
LAB_L2_IP=10.250.0.243
LAB_L2_IP6=fd42:250::fa
LAB_ROUTER_ASN=64500
LAB_CLUSTER_ASN=64512

# lab_node_index NODE: 1 for lab-n1 …
lab_node_index() { echo "${1##*-n}"; }
lab_node_ip() { echo "10.250.0.$((10 + $(lab_node_index "$1")))"; }
lab_node_ip6() { echo "fd42:250::$((10 + $(lab_node_index "$1")))"; }
lab_node_pod_cidr() { echo "10.244.$(lab_node_index "$1").0/24"; }
lab_node_pod_cidr6() { echo "fd42:244:0:$(lab_node_index "$1")::/64"; }
lab_netns() { echo "$LAB-$1"; }        # bmlab-lab-n1, bmlab-rt, bmlab-cl
LAB_ROUTER_NS=$LAB-rt
LAB_CLIENT_NS=$LAB-cl

LAB_PKI=$LAB_STATE/pki
LAB_RUN=$LAB_STATE/run          # pid files
LAB_LOGS=$LAB_STATE/logs
LAB_KUBECONFIG=$LAB_STATE/admin.kubeconfig
LAB_DEMO_NS=demo
LAB_DEMO_SVC=hello
LAB_L2_POOL=lab-l2
LAB_L2_SVC=hello-l2
LAB_L2_CLIENT_NS=$LAB_ROUTER_NS   # the layer-2 client: on the bridge, see above
# A second host on the bridge that asks "who has the address?" from scratch (arping, ndisc6)
# without touching the client's neighbour table: what a client resolving afresh would get.
LAB_L2_RESOLVER_NS=$LAB-l2r
LAB_L2_RESOLVER_IP=10.250.0.3
LAB_L2_RESOLVER_IP6=fd42:250::3
