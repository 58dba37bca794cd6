"""The mock backend's names: resources, annotation keys, device type and defaults.

Every string another component matches on is spelled here once. The annotation keys are built
with the core's key helpers (:mod:`hami_core.sdk`), so they follow HAMi's naming exactly as a
vendor's would: ``hami.io/node-mock-register``, ``hami.io/node-handshake-mock``,
``hami.io/mock-devices-to-allocate`` and ``hami.io/mock-devices-allocated``.
"""

from __future__ import annotations

import uuid

from hami_core.sdk import ResourceNames
from hami_core.sdk import vendor_keys

#: The backend's name on every surface (entry point, distribution suffix, Helm key).
NAME = "mock"
#: The request type written into pod annotations; device types must contain it.
DEVICE_TYPE = "MOCK"

RESOURCE_NAMES = ResourceNames(
    count="mock.hami.io/gpu",
    memory="mock.hami.io/gpumem",
    memory_percentage="mock.hami.io/gpumem-percentage",
    cores="mock.hami.io/gpucores",
    priority="mock.hami.io/priority",
)

KEYS = vendor_keys(register_word=NAME, devices_word=NAME, handshake_suffix=NAME)

#: Namespace of the simulated device UUIDs: the same node and index always give the same UUID.
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "mock.hami.io")
#: Prefix of simulated device ids, in the manner of NVIDIA's ``GPU-<uuid>``.
UUID_PREFIX = "MOCK-"
