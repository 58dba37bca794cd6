"""The node side of hami: kubelet device-plugin gRPC servers, kubelet registration and the API's constants."""

from __future__ import annotations
