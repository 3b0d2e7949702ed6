import numpy as np
import pandas as pd
import pytest

from sentinel42.market import validate


@pytest.mark.parametrize("n", [1, 5, 9, 12, 33, 40, 200])
def test_fast_centred_median_matches_pandas_rolling_median(n):
    values = np.random.default_rng(n).random(n)
    window = 2 * validate.SPIKE_HALF_WINDOW + 1
    expected = (
        pd.Series(values)
        .rolling(window, center=True, min_periods=validate.MIN_NEIGHBOURS + 1)
        .median()
        .to_numpy()
    )
    for start in range(n):
        got = validate._centered_median(values, start)
        np.testing.assert_allclose(got[start:], expected[start:], equal_nan=True)
