"""The kubelet device-plugin API v1beta1 as a .proto file; ``make protos`` generates the Python modules.

Import them as ``from hami_core.deviceplugin.proto import deviceplugin_pb2, deviceplugin_pb2_grpc``.
The generated files are build output and are never committed.
"""

from __future__ import annotations
