"""hami core: vendor-neutral scheduling, admission and device-plugin framework.

A device backend imports :mod:`hami_core.sdk`, the one supported surface for vendors, and its
tests :mod:`hami_core.testing`, the conformance kit. Every other submodule is implementation and
may change in any release; this package itself exports nothing, so there is one place to look.
"""
