"""Baselines users trust, scored on the same held-out trials as the SNN.

* Regression: a Wiener filter, i.e. ridge regression of the target on the inputs of the
  current and ``H - 1`` previous ticks plus a bias, ``y_t = b + sum_h W_h x_{t-h}``; ridge
  strength chosen on a validation fifth of the training sequences.
* Classification: CSP + LDA (MNE's CSP, scikit-learn's linear discriminant analysis) on the
  raw input windows, band-passed first as is usual for motor imagery. It has no state, so its
  continuous figure equals its per-trial one.
"""

from __future__ import annotations

import numpy as np


def r2_score(pred: np.ndarray, target: np.ndarray) -> tuple[float, list[float]]:
    """Mean over target dimensions of ``1 - SS_res / SS_tot`` (NaN for a constant dimension)."""
    per = []
    for k in range(target.shape[1]):
        ss_res = float(np.sum((target[:, k] - pred[:, k]) ** 2))
        ss_tot = float(np.sum((target[:, k] - target[:, k].mean()) ** 2))
        per.append(1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"))
    return float(np.mean(per)), per


def history_features(x: np.ndarray, H: int) -> np.ndarray:
    """(T, B, n) -> (T, B, n H + 1): inputs of ticks t, t-1, .. t-H+1 (zeros before the
    sequence start) and a constant 1."""
    T, B, n = x.shape
    feats = [x]
    for h in range(1, H):
        s = np.zeros_like(x)
        s[h:] = x[:-h]
        feats.append(s)
    feats.append(np.ones((T, B, 1), x.dtype))
    return np.concatenate(feats, axis=2)


def _flat(f, v, m, idx):
    sel = m[:, idx] > 0
    return f[:, idx][sel], v[:, idx][sel]


def _solve(F, Y, lam):
    G = F.T @ F
    reg = lam * np.eye(G.shape[0])
    reg[-1, -1] = 0.0  # no penalty on the bias
    return np.linalg.solve(G + reg, F.T @ Y)


def fit_wiener(x_tr, v_tr, m_tr, H: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Ridge weights on history features of the training sequences (T, B, ...) and the ridge
    strength, chosen from 1e-2 .. 1e4 on a validation fifth of the sequences (seeded)."""
    f_tr = history_features(np.asarray(x_tr, np.float64), H)
    B = x_tr.shape[1]
    perm = np.random.default_rng(seed).permutation(B)
    n_val = max(1, B // 5) if B > 1 else 0
    val, fit_b = perm[:n_val], perm[n_val:]
    best = None
    if n_val:
        F_fit, Y_fit = _flat(f_tr, v_tr, m_tr, fit_b)
        F_val, Y_val = _flat(f_tr, v_tr, m_tr, val)
        for lam in 10.0 ** np.arange(-2, 5):
            r2, _ = r2_score(F_val @ _solve(F_fit, Y_fit, lam), Y_val)
            if best is None or r2 > best[0]:
                best = (r2, lam)
    lam = float(best[1]) if best else 1.0
    F_all, Y_all = _flat(f_tr, v_tr, m_tr, np.arange(B))
    return _solve(F_all, Y_all, lam), lam


def wiener_score(w: np.ndarray, x, v, m, H: int) -> tuple[float, list[float]]:
    """R^2 of the Wiener filter ``w`` on the masked ticks of sequences ``x`` (T, B, n)."""
    F, Y = _flat(history_features(np.asarray(x, np.float64), H), v, m, np.arange(x.shape[1]))
    return r2_score(F @ w, Y)


def wiener_filter(x_tr, v_tr, m_tr, x_te, v_te, m_te, H: int, seed: int = 0) -> dict:
    """Fit on the training sequences, score on the test sequences: ``r2``, ``r2_per_dim``, ``ridge``."""
    w, lam = fit_wiener(x_tr, v_tr, m_tr, H, seed)
    r2, per = wiener_score(w, x_te, v_te, m_te, H)
    return {"r2": r2, "r2_per_dim": per, "ridge": lam}


def csp_lda(windows: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, *,
            srate_hz: float, band_hz: tuple[float, float] | None = (8.0, 30.0), n_components: int = 4) -> dict:
    """CSP (``n_components`` spatial filters, log-variance features) + LDA fitted on the
    ``train`` windows (n, channels, times), accuracy on the ``test`` windows. With ``band_hz``
    the windows are band-passed first (MNE's FIR filter)."""
    from rtsnn.extras import require

    mne = require("mne", "CSP + LDA baseline")
    from mne.decoding import CSP

    discriminant = require("sklearn.discriminant_analysis", "CSP + LDA baseline")
    X = np.asarray(windows, np.float64)
    if band_hz is not None:
        from mne.filter import filter_data

        X = filter_data(X, srate_hz, band_hz[0], band_hz[1], verbose="error")
    n_comp = int(min(n_components, X.shape[1]))
    csp = CSP(n_components=n_comp, reg="ledoit_wolf", log=True)
    lda = discriminant.LinearDiscriminantAnalysis()
    with mne.utils.use_log_level("error"):  # MNE logs its rank estimate on stdout: the result line is there
        f_tr = csp.fit_transform(X[train], labels[train])
        lda.fit(f_tr, labels[train])
        pred = lda.predict(csp.transform(X[test]))
    return {"accuracy": float(np.mean(pred == labels[test])), "n_components": n_comp,
            "band_hz": list(band_hz) if band_hz else None, "n_train": int(len(train)), "n_test": int(len(test))}
