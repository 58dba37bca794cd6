"""The Hygon DCU backend's names: resources, annotation keys, device type and user annotations.

Every string HAMi v2.10 matches on for DCUs (``specs/hami-wire.md`` 1.1, 1.2, 6.3) is spelled here
once. The annotation keys are built with the core's key helpers: the register annotation
``hami.io/node-dcu-register`` (legacy colon format), the handshake ``hami.io/node-handshake-dcu`` and
the pod keys ``hami.io/dcu-devices-to-allocate`` / ``hami.io/dcu-devices-allocated``.
"""

from __future__ import annotations

from hami_core.sdk import ResourceNames
from hami_core.sdk import vendor_keys

#: The backend's name on every surface (entry point, distribution suffix, Helm key).
NAME = "dcu"
#: HAMi's CommonWord and request type; device models are registered as ``DCU-<model>``.
DEVICE_TYPE = "DCU"

RESOURCE_NAMES = ResourceNames(
    count="hygon.com/dcunum",
    memory="hygon.com/dcumem",
    cores="hygon.com/dcucores",
)

KEYS = vendor_keys(register_word=NAME, devices_word=NAME, handshake_suffix=NAME)

#: Pod annotations: comma lists of model substrings a container's DCUs must (not) match.
USE_TYPE = "hygon.com/use-dcutype"
NOUSE_TYPE = "hygon.com/nouse-dcutype"
#: Pod annotations: comma lists of device ids a container's DCUs must (not) be.
USE_UUID = "hygon.com/use-gpuuuid"
NOUSE_UUID = "hygon.com/nouse-gpuuuid"

#: Device ids are ``DCU-<index>``, the form HAMi's DCU device plugin parses back in Allocate.
ID_PREFIX = "DCU-"
