"""The scheduler extender: cache, filtering, scoring policies, binding and the HTTP(S) server.

``hami scheduler`` builds it with :func:`hami_core.scheduler.app.build_scheduler`; the modules are
implementation, except what :mod:`hami_core.scheduler.app` and :mod:`hami_core.scheduler.server`
document for the composition root.
"""

from __future__ import annotations
