"""The Cambricon MLU backend's names: resources, annotation keys, device type and user annotations.

HAMi v2.10 (``specs/hami-wire.md`` 1.2, 2.1, 6.2) has no MLU register or handshake annotation: it
synthesizes devices from the node's ``cambricon.com/mlu.smlu.*`` capacity. hami's own MLU device
plugin also registers its devices under ``hami.io/node-mlu-register`` (JSON), which HAMi ignores,
and the scheduler handshakes on ``hami.io/node-handshake-mlu``. The pod keys are HAMi's:
``hami.io/cambricon-mlu-devices-to-allocate`` / ``-allocated``, plus the bare
``CAMBRICON_DSMLU_*`` keys Cambricon's dynamic-sMLU device plugin reads.
"""

from __future__ import annotations

from hami_core.sdk import ResourceNames
from hami_core.sdk import vendor_keys

#: The backend's name on every surface (entry point, distribution suffix, Helm key).
NAME = "mlu"
#: HAMi's CommonWord and request type, also every device's type.
DEVICE_TYPE = "MLU"

RESOURCE_NAMES = ResourceNames(
    count="cambricon.com/vmlu",
    memory="cambricon.com/mlu.smlu.vmemory",
    cores="cambricon.com/mlu.smlu.vcore",
)

KEYS = vendor_keys(register_word=NAME, devices_word="cambricon-mlu", handshake_suffix=NAME)

#: MiB per unit of ``cambricon.com/mlu.smlu.vmemory`` (HAMi's ``MemoryFactor``).
MEMORY_UNIT_MIB = 256
#: Cores of one physical MLU in ``cambricon.com/mlu.smlu.vcore`` capacity.
CORES_PER_CARD = 100
#: Slots of one synthesized MLU (HAMi registers 100).
SLOTS_PER_CARD = 100

#: Pod annotations for Cambricon's dynamic-sMLU device plugin (bare keys, no prefix).
DSMLU_ASSIGNED = "CAMBRICON_DSMLU_ASSIGNED"
DSMLU_PROFILE = "CAMBRICON_DSMLU_PROFILE"
#: Node annotation HAMi's scheduler sets while binding an MLU pod (RFC3339 time, 2-minute expiry).
DSMLU_LOCK = "cambricon.com/dsmlu.lock"

#: Pod annotations: comma lists of device ids a container's MLUs must (not) be.
USE_UUID = "cambricon.com/use-gpuuuid"
NOUSE_UUID = "cambricon.com/nouse-gpuuuid"


def device_id(node_name: str, index: int) -> str:
    """``<node>-cambricon-mlu-<index>``: the id HAMi gives synthesized MLUs."""
    return f"{node_name}-cambricon-mlu-{index}"
