"""Pod-aware node policies (:mod:`hami_core.placement`): FGD and its baselines.

:class:`~hami_core.scheduler.policies.registry.PlacementPolicies` contributes them through the
``hami_scoring_policies`` hook, the same door as the built-in ``binpack``/``spread``.
"""
