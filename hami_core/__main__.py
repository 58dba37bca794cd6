"""``python -m hami_core ...``: the same as the ``hami`` console script."""

from __future__ import annotations

from hami_core.cli import main

if __name__ == "__main__":
    main()
