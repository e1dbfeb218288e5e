"""Yin-Yang (bit for bit against the published sets), XOR and Iris loaders; bad input."""

import os
from pathlib import Path

import numpy as np
import pytest

from rtsnn.datasets import Split, check_dataset, load_iris, load_xor, load_yinyang, minmax_scale
from rtsnn.datasets.iris import iris_table
from rtsnn.datasets.yinyang import generate_yinyang, yinyang_class

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "yinyang"


def _need_data():
    if not DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the published Yin-Yang data is missing at {DATA}")
        pytest.skip(f"published Yin-Yang sets not found at {DATA} (CI unset)")


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_yinyang_generator_reproduces_published_sets_bit_for_bit(split):
    _need_data()
    gen = load_yinyang(split)
    pub_x = np.load(DATA / f"{split}_samples.npy")
    pub_y = np.load(DATA / f"{split}_labels.npy")
    assert gen.x.dtype == pub_x.dtype and gen.x.shape == pub_x.shape
    assert gen.x.tobytes() == pub_x.tobytes()
    np.testing.assert_array_equal(gen.y, pub_y)
    loaded = load_yinyang(split, DATA)
    assert loaded.x.tobytes() == pub_x.tobytes()


def test_yinyang_class_counts_and_geometry():
    tr, te = load_yinyang("train"), load_yinyang("test")
    assert np.bincount(tr.y).tolist() == [1681, 1702, 1617]
    assert np.bincount(te.y).tolist() == [350, 316, 334]
    x, y = tr.x[:, 0], tr.x[:, 1]
    assert np.all((x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25)
    np.testing.assert_array_equal(tr.x[:, 2], 1.0 - x)
    assert all(yinyang_class(a, b) == c for a, b, c in zip(x[:200], y[:200], tr.y[:200]))


def test_yinyang_class_rule_landmarks():
    assert yinyang_class(0.75, 0.5) == 2  # right dot centre
    assert yinyang_class(0.25, 0.5) == 2  # left dot centre
    assert yinyang_class(0.25, 0.33) == 1  # ring around the left dot is yin
    assert yinyang_class(0.75, 0.66) == 0  # ring around the right dot is yang
    assert yinyang_class(0.5, 0.95) == 1  # top half, far from the right dot: yin


def test_yinyang_generator_deterministic_and_validates():
    a, b = generate_yinyang(50, 7), generate_yinyang(50, 7)
    assert a.x.tobytes() == b.x.tobytes()
    assert not np.array_equal(generate_yinyang(50, 8).x, a.x)
    with pytest.raises(ValueError, match="r_small"):
        generate_yinyang(10, 0, r_small=0.6, r_big=0.5)
    with pytest.raises(ValueError, match="split"):
        load_yinyang("training")


def test_xor():
    d = load_xor()
    assert d.x.shape == (4, 2)
    np.testing.assert_array_equal(d.y, np.logical_xor(d.x[:, 0], d.x[:, 1]).astype(int))


def test_iris_table_is_fishers():
    d = iris_table()
    assert d.x.shape == (150, 4)
    np.testing.assert_allclose(d.x.sum(axis=0), [876.5, 458.6, 563.7, 179.9], atol=1e-9)
    assert np.bincount(d.y).tolist() == [50, 50, 50]
    np.testing.assert_array_equal(d.x[0], [5.1, 3.5, 1.4, 0.2])
    np.testing.assert_array_equal(d.x[149], [5.9, 3.0, 5.1, 1.8])
    np.testing.assert_array_equal(d.x[34], [4.9, 3.1, 1.5, 0.2])  # Fisher, not UCI's 0.1
    np.testing.assert_array_equal(d.x[37], [4.9, 3.6, 1.4, 0.1])  # Fisher, not UCI's 3.1/1.5


def test_iris_split_fixed_stratified_disjoint():
    tr, te = load_iris(split_seed=3)
    tr2, te2 = load_iris(split_seed=3)
    np.testing.assert_array_equal(te.x, te2.x)
    assert len(tr) == 120 and len(te) == 30
    assert np.bincount(te.y).tolist() == [10, 10, 10]
    full = iris_table()
    rows = {tuple(r) + (c,) for r, c in zip(full.x, full.y)}
    assert len(rows) < 150  # the table has duplicate rows; compare by multiset
    merged = np.concatenate([tr.x, te.x])
    assert sorted(map(tuple, merged)) == sorted(map(tuple, full.x))
    other = load_iris(split_seed=4)[1]
    assert not np.array_equal(other.x, te.x)
    with pytest.raises(ValueError, match="test_per_class"):
        load_iris(test_per_class=0)


def test_minmax_scale_uses_train_range():
    tr = np.array([[0.0, 10.0], [2.0, 20.0]])
    te = np.array([[1.0, 30.0]])
    a, b = minmax_scale(tr, te)
    np.testing.assert_allclose(a, [[0, 0], [1, 1]])
    np.testing.assert_allclose(b, [[0.5, 1.0]])  # clipped


@pytest.mark.parametrize("x, y, match", [
    (np.ones((3, 2)), np.zeros(3, int), None),
    (np.array([[1.0, np.nan]]), np.zeros(1, int), "x contains NaN"),
    (np.array([[1.0, np.inf]]), np.zeros(1, int), "x contains inf"),
    (np.ones(3), np.zeros(3, int), "x must be 2-D"),
    (np.ones((3, 2)), np.zeros((3, 1), int), "y must be 1-D"),
    (np.ones((3, 2)), np.zeros(2, int), "y has 2 labels but x has 3 rows"),
    (np.ones((3, 2)), np.zeros(3), "y must hold integer labels"),
    (np.ones((3, 2)), -np.ones(3, int), "y contains negative labels"),
])
def test_check_dataset_names_bad_array(x, y, match):
    if match is None:
        check_dataset(x, y)
        Split(x, y)
        return
    with pytest.raises(ValueError, match=match):
        check_dataset(x, y)
    with pytest.raises(ValueError, match=match):
        Split(x, y)


def test_check_dataset_custom_names_and_limits():
    with pytest.raises(ValueError, match="x_train contains NaN"):
        check_dataset(np.array([[np.nan]]), np.zeros(1, int), x_name="x_train")
    with pytest.raises(ValueError, match="labels must be < 3"):
        check_dataset(np.ones((1, 2)), np.array([3]), n_classes=3)
    with pytest.raises(ValueError, match="must have 4 features"):
        check_dataset(np.ones((1, 2)), np.array([0]), n_features=4)
