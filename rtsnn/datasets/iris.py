"""Fisher's Iris data (150 samples, 4 features in cm, 3 species), embedded.

The table is Fisher (1936) as printed, i.e. the UCI file with its two known transcription
errors corrected (sample 35: petal width 0.2; sample 38: sepal width 3.6, petal length 1.4);
column sums 876.5, 458.6, 563.7, 179.9. Features: sepal length, sepal width, petal length,
petal width. Classes: 0 setosa, 1 versicolor, 2 virginica (50 each, in that order).
The data are facts in the public domain.
"""

from __future__ import annotations

import numpy as np

from rtsnn.datasets import Split

CLASS_NAMES = ("setosa", "versicolor", "virginica")
FEATURE_NAMES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")

_TABLE = """
    5.1 3.5 1.4 0.2 | 4.9 3 1.4 0.2 | 4.7 3.2 1.3 0.2 | 4.6 3.1 1.5 0.2 | 5 3.6 1.4 0.2
    5.4 3.9 1.7 0.4 | 4.6 3.4 1.4 0.3 | 5 3.4 1.5 0.2 | 4.4 2.9 1.4 0.2 | 4.9 3.1 1.5 0.1
    5.4 3.7 1.5 0.2 | 4.8 3.4 1.6 0.2 | 4.8 3 1.4 0.1 | 4.3 3 1.1 0.1 | 5.8 4 1.2 0.2
    5.7 4.4 1.5 0.4 | 5.4 3.9 1.3 0.4 | 5.1 3.5 1.4 0.3 | 5.7 3.8 1.7 0.3 | 5.1 3.8 1.5 0.3
    5.4 3.4 1.7 0.2 | 5.1 3.7 1.5 0.4 | 4.6 3.6 1 0.2 | 5.1 3.3 1.7 0.5 | 4.8 3.4 1.9 0.2
    5 3 1.6 0.2 | 5 3.4 1.6 0.4 | 5.2 3.5 1.5 0.2 | 5.2 3.4 1.4 0.2 | 4.7 3.2 1.6 0.2
    4.8 3.1 1.6 0.2 | 5.4 3.4 1.5 0.4 | 5.2 4.1 1.5 0.1 | 5.5 4.2 1.4 0.2 | 4.9 3.1 1.5 0.2
    5 3.2 1.2 0.2 | 5.5 3.5 1.3 0.2 | 4.9 3.6 1.4 0.1 | 4.4 3 1.3 0.2 | 5.1 3.4 1.5 0.2
    5 3.5 1.3 0.3 | 4.5 2.3 1.3 0.3 | 4.4 3.2 1.3 0.2 | 5 3.5 1.6 0.6 | 5.1 3.8 1.9 0.4
    4.8 3 1.4 0.3 | 5.1 3.8 1.6 0.2 | 4.6 3.2 1.4 0.2 | 5.3 3.7 1.5 0.2 | 5 3.3 1.4 0.2
    7 3.2 4.7 1.4 | 6.4 3.2 4.5 1.5 | 6.9 3.1 4.9 1.5 | 5.5 2.3 4 1.3 | 6.5 2.8 4.6 1.5
    5.7 2.8 4.5 1.3 | 6.3 3.3 4.7 1.6 | 4.9 2.4 3.3 1 | 6.6 2.9 4.6 1.3 | 5.2 2.7 3.9 1.4
    5 2 3.5 1 | 5.9 3 4.2 1.5 | 6 2.2 4 1 | 6.1 2.9 4.7 1.4 | 5.6 2.9 3.6 1.3
    6.7 3.1 4.4 1.4 | 5.6 3 4.5 1.5 | 5.8 2.7 4.1 1 | 6.2 2.2 4.5 1.5 | 5.6 2.5 3.9 1.1
    5.9 3.2 4.8 1.8 | 6.1 2.8 4 1.3 | 6.3 2.5 4.9 1.5 | 6.1 2.8 4.7 1.2 | 6.4 2.9 4.3 1.3
    6.6 3 4.4 1.4 | 6.8 2.8 4.8 1.4 | 6.7 3 5 1.7 | 6 2.9 4.5 1.5 | 5.7 2.6 3.5 1
    5.5 2.4 3.8 1.1 | 5.5 2.4 3.7 1 | 5.8 2.7 3.9 1.2 | 6 2.7 5.1 1.6 | 5.4 3 4.5 1.5
    6 3.4 4.5 1.6 | 6.7 3.1 4.7 1.5 | 6.3 2.3 4.4 1.3 | 5.6 3 4.1 1.3 | 5.5 2.5 4 1.3
    5.5 2.6 4.4 1.2 | 6.1 3 4.6 1.4 | 5.8 2.6 4 1.2 | 5 2.3 3.3 1 | 5.6 2.7 4.2 1.3
    5.7 3 4.2 1.2 | 5.7 2.9 4.2 1.3 | 6.2 2.9 4.3 1.3 | 5.1 2.5 3 1.1 | 5.7 2.8 4.1 1.3
    6.3 3.3 6 2.5 | 5.8 2.7 5.1 1.9 | 7.1 3 5.9 2.1 | 6.3 2.9 5.6 1.8 | 6.5 3 5.8 2.2
    7.6 3 6.6 2.1 | 4.9 2.5 4.5 1.7 | 7.3 2.9 6.3 1.8 | 6.7 2.5 5.8 1.8 | 7.2 3.6 6.1 2.5
    6.5 3.2 5.1 2 | 6.4 2.7 5.3 1.9 | 6.8 3 5.5 2.1 | 5.7 2.5 5 2 | 5.8 2.8 5.1 2.4
    6.4 3.2 5.3 2.3 | 6.5 3 5.5 1.8 | 7.7 3.8 6.7 2.2 | 7.7 2.6 6.9 2.3 | 6 2.2 5 1.5
    6.9 3.2 5.7 2.3 | 5.6 2.8 4.9 2 | 7.7 2.8 6.7 2 | 6.3 2.7 4.9 1.8 | 6.7 3.3 5.7 2.1
    7.2 3.2 6 1.8 | 6.2 2.8 4.8 1.8 | 6.1 3 4.9 1.8 | 6.4 2.8 5.6 2.1 | 7.2 3 5.8 1.6
    7.4 2.8 6.1 1.9 | 7.9 3.8 6.4 2 | 6.4 2.8 5.6 2.2 | 6.3 2.8 5.1 1.5 | 6.1 2.6 5.6 1.4
    7.7 3 6.1 2.3 | 6.3 3.4 5.6 2.4 | 6.4 3.1 5.5 1.8 | 6 3 4.8 1.8 | 6.9 3.1 5.4 2.1
    6.7 3.1 5.6 2.4 | 6.9 3.1 5.1 2.3 | 5.8 2.7 5.1 1.9 | 6.8 3.2 5.9 2.3 | 6.7 3.3 5.7 2.5
    6.7 3 5.2 2.3 | 6.3 2.5 5 1.9 | 6.5 3 5.2 2 | 6.2 3.4 5.4 2.3 | 5.9 3 5.1 1.8
"""


def iris_table() -> Split:
    """All 150 samples in the published order."""
    vals = np.array(_TABLE.replace("|", " ").split(), dtype=np.float64).reshape(150, 4)
    y = np.repeat(np.arange(3, dtype=np.int64), 50)
    return Split(vals, y)


def load_iris(split_seed: int = 0, test_per_class: int = 10) -> tuple[Split, Split]:
    """A fixed, seeded, stratified split: ``test_per_class`` samples of each species go to
    the test split (default 30 test / 120 train). Same seed, same split."""
    if not (1 <= int(test_per_class) <= 49):
        raise ValueError(f"test_per_class must be in [1, 49], got {test_per_class!r}")
    full = iris_table()
    rng = np.random.default_rng(split_seed)
    test_idx = []
    for c in range(3):
        idx = np.nonzero(full.y == c)[0]
        test_idx.extend(rng.choice(idx, size=int(test_per_class), replace=False).tolist())
    test_mask = np.zeros(150, dtype=bool)
    test_mask[test_idx] = True
    train = Split(full.x[~test_mask], full.y[~test_mask])
    test = Split(full.x[test_mask], full.y[test_mask])
    return train, test
