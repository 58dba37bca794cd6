"""The public test kit for backend authors and hami's own tests.

``BackendContract`` is the conformance suite every backend runs (see
:mod:`hami_core.testing.contract`), and its checks are available one by one for targeted tests
(``assert_fit_within_capacity``, ``assert_tolerates_container``); ``make_pod``, ``make_container`` and ``make_node`` build
API-shaped objects; ``FakeKube`` is the in-memory ``KubeClient`` for unit tests. The pytest plugin (:mod:`hami_core.testing.pytest_plugin`, registered under
``pytest11``) adds fixtures. Importing this package needs ``hami-core[test]``.
"""

from __future__ import annotations

from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.cluster import HamiCluster
from hami_core.testing.cluster import PipelineError
from hami_core.testing.cluster import PodRun
from hami_core.testing.contract import BackendContract
from hami_core.testing.contract import assert_fit_within_capacity
from hami_core.testing.contract import assert_tolerates_container
from hami_core.testing.fake_kube import FakeKube

__all__ = [
    "BackendContract",
    "FakeKube",
    "HamiCluster",
    "PipelineError",
    "PodRun",
    "assert_fit_within_capacity",
    "assert_tolerates_container",
    "make_container",
    "make_node",
    "make_pod",
]
