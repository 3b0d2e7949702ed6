import numpy as np
import pandas as pd
import pytest

from sentinel42.market import validate


@pytest.mark.parametrize("n", [1, 5, 9, 12, 33, 40, 200])
def test_fast_trailing_median_matches_pandas_rolling_median(n):
    values = np.random.default_rng(n).random(n)
    expected = (
        pd.Series(values)
        .rolling(validate.SPIKE_LOOKBACK + 1, min_periods=validate.MIN_NEIGHBOURS + 1)
        .median()
        .to_numpy()
    )
    for start in range(n):
        got = validate._trailing_median(values, start)
        np.testing.assert_allclose(got[start:], expected[start:], equal_nan=True)


@pytest.mark.parametrize("n", [12, 40, 200])
def test_trailing_median_at_j_ignores_values_after_j(n):
    values = np.random.default_rng(n).random(n)
    full = validate._trailing_median(values, 0)
    for j in range(n):
        changed = values.copy()
        changed[j + 1 :] = 1e6
        for start in (0, j):
            got = validate._trailing_median(changed, start)
            np.testing.assert_array_equal(got[start : j + 1], full[start : j + 1])
