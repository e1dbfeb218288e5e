"""Random FP networks for the tests (shared strategy)."""

import numpy as np
from hypothesis import strategies as st

from rtsnn.learn.offline import fp


@st.composite
def fp_case(draw, max_depth=3, recurrent=None, max_width=4):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = draw(st.integers(1, 4))
    depth = draw(st.integers(1, max_depth))
    sizes = [n_in] + [draw(st.integers(1, max_width)) for _ in range(depth)]
    rec = draw(st.booleans()) if recurrent is None else recurrent
    alpha = draw(st.floats(0.5, 2.0))
    ratio = draw(st.sampled_from([1.0, 0.5, 0.8, 0.999, 1.25, 2.0]))
    beta = alpha * ratio
    ws, rs = [], []
    for l in range(depth):
        scale = 2.5 / max(1, sizes[l]) ** 0.5
        ws.append(rng.normal(scale * 1.5, scale, size=(sizes[l], sizes[l + 1])))
        if rec and sizes[l + 1] > 1:
            r = rng.normal(0.0, 0.6, size=(sizes[l + 1], sizes[l + 1]))
            np.fill_diagonal(r, 0.0)
            rs.append(r)
        else:
            rs.append(None)
    net = fp.FPNetwork(ws, rs)
    x = rng.uniform(0.0, 2.0, size=n_in)
    if n_in > 1 and draw(st.booleans()):
        x[rng.integers(n_in)] = np.inf  # a silent input channel
    settings = fp.FPSettings(alpha=alpha, beta=beta, theta=1.0, t_max=6.0, max_hidden_spikes=5)
    return net, settings, x
