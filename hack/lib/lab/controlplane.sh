# The control plane on the host side of the lab bridge: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler, all listening on the bridge address only (so
# nothing else on this machine is in their way). Sourced by hack/lab.
# shellcheck shell=bash

lab_controlplane_up() {
  local p=$LAB_PKI
  lab_start etcd "" "$ETCD_BIN" --name lab --data-dir "$LAB_STATE/etcd" \
    --listen-client-urls "http://$LAB_HOST_IP:$LAB_ETCD_PORT" \
    --advertise-client-urls "http://$LAB_HOST_IP:$LAB_ETCD_PORT" \
    --listen-peer-urls "http://$LAB_HOST_IP:$LAB_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://$LAB_HOST_IP:$LAB_ETCD_PEER_PORT" \
    --initial-cluster "lab=http://$LAB_HOST_IP:$LAB_ETCD_PEER_PORT" \
    --listen-metrics-urls "" --log-level warn
  lab_wait 30 "etcd (log: $LAB_LOGS/etcd.log)" \
    curl -fsS "http://$LAB_HOST_IP:$LAB_ETCD_PORT/health" || return 1
  lab_start kube-apiserver "" "$KUBE_LAB_BIN/kube-apiserver" \
    --etcd-servers "http://$LAB_HOST_IP:$LAB_ETCD_PORT" \
    --bind-address "$LAB_HOST_IP" --advertise-address "$LAB_HOST_IP" --secure-port "$LAB_APISERVER_PORT" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --kubelet-client-certificate "$p/admin.crt" --kubelet-client-key "$p/admin.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range "$LAB_SERVICE_CIDR" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false
  # --kubelet-preferred-address-types: the apiserver would otherwise try the nodes' Hostname
  # address first and resolve lab-nN through this machine's DNS (kubectl logs/exec fail).
  lab_wait 60 "kube-apiserver (log: $LAB_LOGS/kube-apiserver.log)" \
    "$KUBE_LAB_BIN/kubectl" --kubeconfig "$LAB_KUBECONFIG" get --raw /readyz || return 1
  # --cloud-provider=external: the cloud part (node initialization, node lifecycle) is
  # baremetal-ccm's. No node CIDR allocation: each node's pod CIDR is fixed by the lab and
  # written into its CNI configuration before its kubelet starts (host-local IPAM reads the
  # range from that file, and the lab sets the routes between pod CIDRs itself: there is no
  # route controller). --node-monitor-grace-period 20s (kubeadm: the 50s default) so that the
  # node-down scenario sees a NotReady node in seconds, not a minute.
  lab_start kube-controller-manager "" "$KUBE_LAB_BIN/kube-controller-manager" \
    --kubeconfig "$LAB_STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$LAB_STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$LAB_STATE/kube-controller-manager.kubeconfig" \
    --bind-address "$LAB_HOST_IP" --secure-port 10257 \
    --cloud-provider=external --use-service-account-credentials=true \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --allocate-node-cidrs=false --cluster-cidr "$LAB_CLUSTER_CIDR" \
    --service-cluster-ip-range "$LAB_SERVICE_CIDR" \
    --node-monitor-grace-period 20s --leader-elect=false --profiling=false
  lab_start kube-scheduler "" "$KUBE_LAB_BIN/kube-scheduler" \
    --kubeconfig "$LAB_STATE/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$LAB_STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$LAB_STATE/kube-scheduler.kubeconfig" \
    --bind-address "$LAB_HOST_IP" --secure-port 10259 --leader-elect=false --profiling=false
}

LAB_CONTROLPLANE=(kube-scheduler kube-controller-manager kube-apiserver etcd)
