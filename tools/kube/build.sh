#!/bin/sh
# Build kube-apiserver, kube-scheduler and etcd from this module into DEST (atomically: a half-built
# directory is never taken for a finished one). Usage: build.sh KUBE_VERSION DEST
set -eu
kube=$1 dest=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "make kube: no Go toolchain on PATH (need go >= $(sed -n 's/^go //p' "$here/go.mod"))" >&2; exit 1; }
grep -q "k8s.io/kubernetes $kube" "$here/go.mod" || { echo "make kube: tools/kube/go.mod is not for $kube; run tools/kube/gen-gomod.sh" >&2; exit 1; }
minor=${kube#v1.}; minor=${minor%%.*}
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
tmp="$dest.partial"
rm -rf "$tmp" && mkdir -p "$tmp"
cd "$here"
CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler go.etcd.io/etcd/server/v3
# go names a binary after its last path element that is not a major-version suffix: server/v3 -> server.
mv "$tmp/server" "$tmp/etcd"
rm -rf "$dest" && mv "$tmp" "$dest"
