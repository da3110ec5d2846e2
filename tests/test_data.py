import numpy as np
import pytest
import sklearn.datasets
import torch

from vaelib.data import binarize, binarize_stochastic, load_digits


@pytest.mark.parametrize(
    "split, rows",
    [
        ("train", range(0, 1000)),
        ("valid", range(1000, 1350)),
        ("test", range(1350, 1797)),
    ],
)
def test_split_is_sklearn_rows(split, rows):
    digits = sklearn.datasets.load_digits()
    x, y = load_digits(split)
    assert x.shape == (len(rows), 64) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    np.testing.assert_array_equal(
        x.numpy(), digits.data[rows.start : rows.stop]
    )
    np.testing.assert_array_equal(
        y.numpy(), digits.target[rows.start : rows.stop]
    )


def test_splits_cover_every_row_once():
    n = sum(load_digits(s)[0].shape[0] for s in ("train", "valid", "test"))
    assert n == sklearn.datasets.load_digits().data.shape[0] == 1797


def test_dtype_and_grey_levels():
    x, _ = load_digits("valid", dtype=torch.float64)
    assert x.dtype == torch.float64
    assert set(x.unique().tolist()) == set(range(17))


@pytest.mark.parametrize("split", ["validation", "Train", 0])
def test_bad_split(split):
    with pytest.raises(
        ValueError, match=r"^split: expected one of 'train', 'valid', 'test'"
    ):
        load_digits(split)


def test_bad_dtype():
    with pytest.raises(
        ValueError, match=r"^dtype: expected a floating-point dtype"
    ):
        load_digits("train", dtype=torch.int64)


def test_binarize_by_hand():
    x = torch.tensor([[0.0, 7.0, 8.0, 9.0, 16.0]])
    assert binarize(x).tolist() == [[0, 0, 0, 1, 1]]
    assert binarize(x, threshold=0).tolist() == [[0, 1, 1, 1, 1]]
    assert binarize(x).dtype == x.dtype


def test_binarize_stochastic_mean_and_reproducibility():
    x = torch.tensor([0.0, 4.0, 16.0]).expand(20000, 3)
    b = binarize_stochastic(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert b[:, 0].sum() == 0 and b[:, 2].sum() == 20000
    p = 4 / 16
    assert abs(b[:, 1].mean().item() - p) < 4 * (p * (1 - p) / 20000) ** 0.5
    again = binarize_stochastic(x, torch.Generator().manual_seed(0))
    assert torch.equal(b, again)


@pytest.mark.parametrize("bad", [[[17.0]], [[-1.0]], [[float("nan")]]])
@pytest.mark.parametrize("fn", [binarize, binarize_stochastic])
def test_binarize_rejects_non_grey_levels(fn, bad):
    with pytest.raises(
        ValueError, match=r"^x: expected grey levels in \[0, 16\]"
    ):
        fn(torch.tensor(bad))
