"""Embedded local cluster: API server emulator, kube-scheduler stand-in and simulated kubelets.

A product part used by ``hami demo``, ``hami local-cluster up`` and the integration tests;
it speaks the real wire protocols (DESIGN.md section 5, specs/kube-wire.md section 1.2).
"""

from __future__ import annotations

from hami_core.localcluster.apiserver import ApiServer
from hami_core.localcluster.apiserver import ServingTLS

__all__ = ["ApiServer", "ServingTLS"]
