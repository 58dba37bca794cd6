"""Embedded local cluster: API server emulator, kube-scheduler stand-in and simulated kubelets.

A product part used by ``hami demo``, ``hami local-cluster up`` and the integration tests;
it speaks the real wire protocols (DESIGN.md section 5, specs/kube-wire.md section 1.2).
"""

from __future__ import annotations

from hami_core.localcluster.apiserver import ApiServer
from hami_core.localcluster.apiserver import ServingTLS
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.fleet import NodeSpec
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.kubelet import Kubelet
from hami_core.localcluster.scheduler import Scheduler

__all__ = [
    "ALLOCATIONS_ANNOTATION",
    "ApiServer",
    "Fleet",
    "Kubelet",
    "LocalCluster",
    "NodeSpec",
    "Scheduler",
    "ServingTLS",
]
