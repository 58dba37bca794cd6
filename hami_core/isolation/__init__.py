"""The in-container shim's contract: environment names and values the device plugin hands to HAMi-core.

The names mirror ``native/include/hami_shim.h``; a meta-test compares the two.
"""

from __future__ import annotations
