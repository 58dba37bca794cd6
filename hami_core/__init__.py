"""hami core: vendor-neutral scheduling, admission and device-plugin framework."""

from __future__ import annotations
