"""Kubernetes API access: the ``KubeClient`` Protocol, its real implementation and the wire shapes.

Only ``hami_core.kube.client`` imports the ``kubernetes`` package; everything else receives a ``KubeClient``.
"""

from __future__ import annotations
