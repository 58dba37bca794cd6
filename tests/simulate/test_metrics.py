from __future__ import annotations

from hami_core.simulate.metrics import discretise
from hami_core.simulate.metrics import mean_sd


def test_discretise_averages_events_rounding_to_each_point() -> None:
    arrived = [0.0, 0.4, 0.6, 1.4, 3.0, 3.2]
    values = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    # 0: events at 0.0 and 0.4; 1: 0.6 and 1.4; 2: none rounds to 2, so [1, 3] gives 1.4 and 3.0;
    # 3: 3.0 and 3.2; 4: none, [3, 5] gives 3.0 and 3.2.
    assert discretise(arrived, values, 6) == (0.5, 2.5, 3.5, 4.5, 4.5, None)


def test_mean_sd_skips_unknown_points() -> None:
    assert mean_sd([1.0, 3.0, None]) == (2.0, 1.41)
    assert mean_sd([4.0]) == (4.0, 0.0)
    assert mean_sd([None]) == (None, None)
