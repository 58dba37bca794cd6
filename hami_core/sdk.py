"""The vendor SDK: everything a device backend imports from hami core, and nothing else.

A backend distribution (``hami-backend-<name>``) imports only this module, and its tests this
module and :mod:`hami_core.testing` (an import-linter contract holds the in-tree backends to it).
Every name in ``__all__`` is covered by the contract version policy of
:data:`CONTRACT_VERSION` (``docs/writing-a-backend.md``): a minor version only adds names and
methods with defaults; removing or changing one is a major version. Every other hami_core module
is implementation and may change in any release.

The names come in groups: the contract (:class:`DeviceBackend` and the value types it takes and
returns), pod views, HAMi's annotation keys and wire codecs a backend shares with the core, the
filter reasons a custom fit reports, the Go ``encoding/json`` building blocks for a vendor's own
annotation formats, the in-container shim's environment contract, the reader of a backend's config
section (:class:`BackendSection`), the errors a backend raises, and the plugin hook marker. It does
no I/O.
"""

from __future__ import annotations

from hami_core.allocation import FitRules
from hami_core.backend import CONTRACT_VERSION
from hami_core.backend import DeviceBackend
from hami_core.backend import MutationResult
from hami_core.backend import RequestRules
from hami_core.backend import ResourceNames
from hami_core.backend import whole_quantity
from hami_core.codec import ALLOCATED_CARDS_INSUFFICIENT_REQUEST
from hami_core.codec import BIND_PHASE
from hami_core.codec import BIND_PHASE_ALLOCATING
from hami_core.codec import BIND_PHASE_FAILED
from hami_core.codec import BIND_PHASE_SUCCESS
from hami_core.codec import CARD_COMPUTE_UNITS_EXHAUSTED
from hami_core.codec import CARD_CORDONED
from hami_core.codec import CARD_INSUFFICIENT_CORE
from hami_core.codec import CARD_INSUFFICIENT_MEMORY
from hami_core.codec import CARD_MIG_TOPOLOGY_INFEASIBLE
from hami_core.codec import CARD_NOT_FOUND_CUSTOM_FILTER_RULE
from hami_core.codec import CARD_NOT_HEALTH
from hami_core.codec import CARD_TIME_SLICING_EXHAUSTED
from hami_core.codec import CARD_TYPE_MISMATCH
from hami_core.codec import CARD_UUID_MISMATCH
from hami_core.codec import DEVICE_CORDON
from hami_core.codec import EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
from hami_core.codec import INT32 as GO_INT32
from hami_core.codec import INT64 as GO_INT64
from hami_core.codec import JSON_TOP
from hami_core.codec import MODE_NOT_FIT
from hami_core.codec import NODE_INSUFFICIENT_DEVICE
from hami_core.codec import NODE_LOCK
from hami_core.codec import NUMA_NOT_FIT
from hami_core.codec import UINT32 as GO_UINT32
from hami_core.codec import VGPU_NODE
from hami_core.codec import GoObject
from hami_core.codec import JsonPlace
from hami_core.codec import VendorKeys
from hami_core.codec import annotation_key
from hami_core.codec import check_type
from hami_core.codec import check_uuid
from hami_core.codec import decode_mig_placement
from hami_core.codec import decode_node_devices
from hami_core.codec import decode_node_devices_legacy
from hami_core.codec import decode_pod_devices
from hami_core.codec import devices_allocated_key
from hami_core.codec import devices_to_allocate_key
from hami_core.codec import encode_node_devices
from hami_core.codec import encode_node_devices_legacy
from hami_core.codec import encode_pod_devices
from hami_core.codec import go_array
from hami_core.codec import go_clean
from hami_core.codec import go_int
from hami_core.codec import go_int_text
from hami_core.codec import go_json_string
from hami_core.codec import go_kind
from hami_core.codec import go_members
from hami_core.codec import go_str
from hami_core.codec import load_go_json
from hami_core.codec import node_handshake_key
from hami_core.codec import parse_bool_go
from hami_core.codec import parse_cordon
from hami_core.codec import vendor_keys
from hami_core.config import HamiConfig
from hami_core.config import parse_config
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
from hami_core.devices import PodSingleDevice
from hami_core.devices import ScoringWeights
from hami_core.errors import BackendError
from hami_core.errors import BackendLoadError
from hami_core.errors import CodecError
from hami_core.errors import ConfigError
from hami_core.errors import HamiError
from hami_core.errors import LockError
from hami_core.errors import QuantityError
from hami_core.errors import echo
from hami_core.hookspecs import ScoringPolicy
from hami_core.hookspecs import hookimpl
from hami_core.isolation.shim import CUDA_DEVICE_MEMORY_LIMIT_PREFIX
from hami_core.isolation.shim import CUDA_DEVICE_SM_LIMIT
from hami_core.isolation.shim import CUDA_DISABLE_CONTROL
from hami_core.isolation.shim import CUDA_TASK_PRIORITY
from hami_core.isolation.shim import GPU_CORE_UTILIZATION_POLICY
from hami_core.isolation.shim import CorePolicy as ShimCorePolicy
from hami_core.isolation.shim import container_env as shim_env
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.quantity import parse_quantity
from hami_core.section import BackendSection

__all__ = [
    "ALLOCATED_CARDS_INSUFFICIENT_REQUEST",
    "BIND_PHASE",
    "BIND_PHASE_ALLOCATING",
    "BIND_PHASE_FAILED",
    "BIND_PHASE_SUCCESS",
    "CARD_COMPUTE_UNITS_EXHAUSTED",
    "CARD_CORDONED",
    "CARD_INSUFFICIENT_CORE",
    "CARD_INSUFFICIENT_MEMORY",
    "CARD_MIG_TOPOLOGY_INFEASIBLE",
    "CARD_NOT_FOUND_CUSTOM_FILTER_RULE",
    "CARD_NOT_HEALTH",
    "CARD_TIME_SLICING_EXHAUSTED",
    "CARD_TYPE_MISMATCH",
    "CARD_UUID_MISMATCH",
    "CONTRACT_VERSION",
    "CUDA_DEVICE_MEMORY_LIMIT_PREFIX",
    "CUDA_DEVICE_SM_LIMIT",
    "CUDA_DISABLE_CONTROL",
    "CUDA_TASK_PRIORITY",
    "DEVICE_CORDON",
    "EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT",
    "GO_INT32",
    "GO_INT64",
    "GO_UINT32",
    "GPU_CORE_UTILIZATION_POLICY",
    "JSON_TOP",
    "MEM_PERCENTAGE_UNSET",
    "MODE_HAMI_CORE",
    "MODE_NOT_FIT",
    "NODE_INSUFFICIENT_DEVICE",
    "NODE_LOCK",
    "NUMA_NOT_FIT",
    "VGPU_NODE",
    "BackendError",
    "BackendLoadError",
    "BackendSection",
    "CodecError",
    "ConfigError",
    "ContainerAllocation",
    "ContainerDevice",
    "ContainerDevices",
    "ContainerView",
    "DeviceBackend",
    "DeviceInfo",
    "DeviceRequest",
    "DeviceSpec",
    "DeviceUsage",
    "FitContext",
    "FitResult",
    "FitRules",
    "GoObject",
    "HamiConfig",
    "HamiError",
    "JsonPlace",
    "LockError",
    "MigPlacement",
    "MigProfile",
    "Mount",
    "MutationResult",
    "PodSingleDevice",
    "PodView",
    "QuantityError",
    "RequestRules",
    "ResourceNames",
    "ScoringPolicy",
    "ScoringWeights",
    "ShimCorePolicy",
    "VendorKeys",
    "annotation_key",
    "check_type",
    "check_uuid",
    "decode_mig_placement",
    "decode_node_devices",
    "decode_node_devices_legacy",
    "decode_pod_devices",
    "devices_allocated_key",
    "devices_to_allocate_key",
    "echo",
    "encode_node_devices",
    "encode_node_devices_legacy",
    "encode_pod_devices",
    "go_array",
    "go_clean",
    "go_int",
    "go_int_text",
    "go_json_string",
    "go_kind",
    "go_members",
    "go_str",
    "hookimpl",
    "load_go_json",
    "node_handshake_key",
    "parse_bool_go",
    "parse_config",
    "parse_cordon",
    "parse_quantity",
    "shim_env",
    "vendor_keys",
    "whole_quantity",
]
