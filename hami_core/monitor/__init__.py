"""``hami monitor``: reads the shim's per-container shared regions on a node, exports their device
metrics with HAMi's names (``specs/hami-wire.md`` 7.2) and coordinates priorities across containers."""
