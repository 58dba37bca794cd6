# Pinned control-plane versions for `make kube`. KUBE_VERSION picks k8s.io/kubernetes; the staging
# replace list in go.mod is derived from that release's own go.mod (gen-gomod.sh), and etcd is the
# go.etcd.io/etcd/server/v3 version that release pins.
KUBE_VERSION := v1.37.2
ETCD_VERSION := v3.7.0
