"""The public test kit for backend authors and hami's own tests.

``BackendContract`` is the conformance suite every backend runs (see
:mod:`hami_core.testing.contract`), and its checks are available one by one for targeted tests
(``assert_fit_within_capacity``, ``assert_tolerates_container``, ``assert_allocation_well_formed``,
``assert_annotations_well_formed``); ``admit`` runs hami's admission decision on a pod in-process and
returns an ``Admission`` with the pod as admitted. ``make_pod``, ``make_container`` and ``make_node`` build
API-shaped objects, ``make_device``, ``make_usage`` and ``registered_node`` devices and the nodes
that register them, ``make_config`` hami's configuration. ``HamiCluster`` runs a backend object on
the local cluster and sends pods through webhook, filter, bind and ``Allocate``
(``run_pod`` returns a ``PodRun``; ``PipelineError`` when a pod does not run; the functions
``run_pod`` and ``wait_pod`` do the same on any local cluster). ``FakeKube`` is the
in-memory ``KubeClient`` for unit tests. The pytest plugin (:mod:`hami_core.testing.pytest_plugin`,
registered under ``pytest11``) adds fixtures, ``hami_cluster`` among them. Importing this package
needs ``hami-core[test]``.
"""

from __future__ import annotations

from hami_core.testing.admission import Admission
from hami_core.testing.admission import admit
from hami_core.testing.builders import make_config
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_device
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.builders import make_usage
from hami_core.testing.builders import registered_node
from hami_core.testing.cluster import ClusterStartError
from hami_core.testing.cluster import HamiCluster
from hami_core.testing.cluster import PipelineError
from hami_core.testing.cluster import PodRun
from hami_core.testing.cluster import run_pod
from hami_core.testing.cluster import wait_pod
from hami_core.testing.contract import BackendContract
from hami_core.testing.contract import assert_allocation_well_formed
from hami_core.testing.contract import assert_annotations_well_formed
from hami_core.testing.contract import assert_fit_within_capacity
from hami_core.testing.contract import assert_tolerates_container
from hami_core.testing.fake_kube import FakeKube

__all__ = [
    "Admission",
    "BackendContract",
    "ClusterStartError",
    "FakeKube",
    "HamiCluster",
    "PipelineError",
    "PodRun",
    "admit",
    "assert_allocation_well_formed",
    "assert_annotations_well_formed",
    "assert_fit_within_capacity",
    "assert_tolerates_container",
    "make_config",
    "make_container",
    "make_device",
    "make_node",
    "make_pod",
    "make_usage",
    "registered_node",
    "run_pod",
    "wait_pod",
]
