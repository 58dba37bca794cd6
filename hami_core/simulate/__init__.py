"""``hami simulate``: replay a cluster trace through the scheduler's own fit and scoring code.

The protocol is that of "Beware of Fragmentation" (ATC '23) on the Alibaba GPU trace: shuffle with
a seed, inflate to a target share of GPU capacity, pods arrive one by one and never leave, a pod
that fits nowhere is dropped. :mod:`~hami_core.simulate.trace` reads clusters and workloads,
:mod:`~hami_core.simulate.workload` builds the arrival list, :mod:`~hami_core.simulate.bridge` is the
one place that calls into the scheduler code, :mod:`~hami_core.simulate.engine` replays one run,
:mod:`~hami_core.simulate.metrics` discretises and aggregates, :mod:`~hami_core.simulate.runner`
fans runs out over processes and :mod:`~hami_core.simulate.report` writes tables, JSON, CSV, plots.
"""
