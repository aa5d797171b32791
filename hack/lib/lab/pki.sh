# The lab's certificates, made with openssl: one CA, the API server's serving certificate,
# one client certificate per identity a kubeadm cluster has (each node's kubelet as
# system:node:<name>, kube-proxy, the controller manager, the scheduler, an admin), and the
# service-account signing key pair. Sourced by hack/lab.
# shellcheck shell=bash

lab_pki() {
  mkdir -p "$LAB_PKI"
  local p=$LAB_PKI
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=baremetal-ccm-lab-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null || die "openssl could not make the lab CA"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  lab_cert apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:$LAB_HOST_IP,IP:$LAB_HOST_IP6,IP:$LAB_KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  lab_cert admin "/O=system:masters/CN=lab-admin"
  lab_cert kube-proxy "/CN=system:kube-proxy"
  lab_cert kube-controller-manager "/CN=system:kube-controller-manager"
  lab_cert kube-scheduler "/CN=system:kube-scheduler"
  local n
  for n in "${LAB_NODES[@]}"; do
    lab_cert "kubelet-$n" "/O=system:nodes/CN=system:node:$n"
  done
  for n in admin kube-proxy kube-controller-manager kube-scheduler; do
    lab_kubeconfig "$n" >"$LAB_STATE/$n.kubeconfig"
  done
  for n in "${LAB_NODES[@]}"; do
    lab_kubeconfig "kubelet-$n" >"$LAB_STATE/kubelet-$n.kubeconfig"
  done
}

# lab_cert NAME SUBJECT [EXTENSION]: a key and a certificate signed by the lab CA.
lab_cert() {
  local p=$LAB_PKI name=$1 subj=$2 ext=${3:-}
  openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$p/$name.key" -out "$p/$name.csr" 2>/dev/null
  local extfile=$p/$name.ext
  {
    echo "basicConstraints=CA:FALSE"
    if [ -n "$ext" ]; then echo "$ext"; echo "extendedKeyUsage=serverAuth"; else echo "extendedKeyUsage=clientAuth"; fi
  } >"$extfile"
  openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 \
    -extfile "$extfile" -out "$p/$name.crt" 2>/dev/null || die "openssl could not sign the $name certificate"
  rm -f "$p/$name.csr" "$extfile"
}

lab_kubeconfig() {
  local p=$LAB_PKI name=$1
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://$LAB_HOST_IP:$LAB_APISERVER_PORT
    certificate-authority: $p/ca.crt
users:
- name: $name
  user:
    client-certificate: $p/$name.crt
    client-key: $p/$name.key
contexts:
- name: lab
  context: {cluster: lab, user: $name}
current-context: lab
KC
}
