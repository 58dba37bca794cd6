"""hami core: vendor-neutral scheduling, admission and device-plugin framework.

This module is the public API for backend authors: the hook marker, the
:class:`~hami_core.backend.DeviceBackend` contract and its version, and the value types its
methods take and return. Everything listed in ``__all__`` is supported; submodules are
implementation unless their docstring says otherwise (``hami_core.testing`` is the test kit).
"""

from __future__ import annotations

from hami_core.backend import CONTRACT_VERSION
from hami_core.backend import DeviceBackend
from hami_core.backend import MutationResult
from hami_core.backend import RequestRules
from hami_core.backend import ResourceNames
from hami_core.codec import VendorKeys
from hami_core.config import HamiConfig
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import MODE_HAMI_CORE
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevice
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceSpec
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import MigPlacement
from hami_core.devices import MigProfile
from hami_core.devices import Mount
from hami_core.devices import PodDevices
from hami_core.devices import PodSingleDevice
from hami_core.devices import ScoringWeights
from hami_core.errors import BackendError
from hami_core.errors import BackendLoadError
from hami_core.errors import CodecError
from hami_core.errors import ConfigError
from hami_core.errors import HamiError
from hami_core.hookspecs import ScoringPolicy
from hami_core.hookspecs import hookimpl

__all__ = [
    "CONTRACT_VERSION",
    "MEM_PERCENTAGE_UNSET",
    "MODE_HAMI_CORE",
    "BackendError",
    "BackendLoadError",
    "CodecError",
    "ConfigError",
    "ContainerAllocation",
    "ContainerDevice",
    "ContainerDevices",
    "DeviceBackend",
    "DeviceInfo",
    "DeviceRequest",
    "DeviceSpec",
    "DeviceUsage",
    "FitContext",
    "FitResult",
    "HamiConfig",
    "HamiError",
    "MigPlacement",
    "MigProfile",
    "Mount",
    "MutationResult",
    "PodDevices",
    "PodSingleDevice",
    "RequestRules",
    "ResourceNames",
    "ScoringPolicy",
    "ScoringWeights",
    "VendorKeys",
    "hookimpl",
]
