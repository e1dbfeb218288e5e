"""Helpers shared by the encoder tests (a uniquely named module: the test folders have no
``__init__.py``, so pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import numpy as np


def run_ticks(encoder, signal: np.ndarray, sizes, max_rows: int | None = None) -> np.ndarray:
    """Feed ``signal`` (rows, n_channels) to ``encoder`` in ticks of ``sizes`` rows (an int or a
    sequence; 0 allowed) through one reused float32 buffer; returns the (ticks, n_out) outputs."""
    signal = np.asarray(signal, np.float32)
    if np.isscalar(sizes):
        sizes = [int(sizes)] * int(np.ceil(len(signal) / max(int(sizes), 1)))
    sizes = list(sizes)
    buf = np.full((max_rows or max(max(sizes, default=1), 1), signal.shape[1]), np.nan, np.float32)
    out = np.zeros(encoder.n_out, np.float32)
    rows = []
    pos = 0
    for k in sizes:
        k = min(k, len(signal) - pos)
        buf[:k] = signal[pos:pos + k]
        out[:] = -1.0  # every encode must overwrite
        encoder.encode(buf, k, out)
        rows.append(out.copy())
        pos += k
    assert pos == len(signal), "sizes do not cover the signal"
    return np.array(rows).reshape(len(rows), encoder.n_out)


def random_sizes(rng: np.random.Generator, total: int, max_size: int) -> list[int]:
    """Random tick sizes (including empty ticks) summing to ``total``."""
    sizes = []
    left = total
    while left > 0:
        k = int(min(rng.integers(0, max_size + 1), left))
        sizes.append(k)
        left -= k
    return sizes
