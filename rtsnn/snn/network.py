"""``Network``: the thin stateful wrapper that owns the buffers and calls the kernels.

One :meth:`Network.step` is one call of the fused kernel :func:`rtsnn.snn.kernels.network_step`
(propagation + neuron update + readout trace + output); nothing is allocated per step.
:meth:`readout`, :meth:`features` and :meth:`spikes` return views of preallocated arrays that
the next step overwrites (copy them to keep them).

The network uses the model's weight arrays in place (no copy): :meth:`set_readout` writes
into ``model.weights.w_out``/``b_out``, so saving the model afterwards saves the new readout.
"""

from __future__ import annotations

import numpy as np

from rtsnn.snn import kernels as K
from rtsnn.snn.params import Model, NetworkState

_F32 = np.dtype(np.float32)


# ---------------------------------------------------------------------- shared with GraphNetwork
def check_propagation(propagation: str) -> None:
    """Refuse a ``propagation`` that is not one of :data:`rtsnn.snn.kernels.MODES`."""
    if propagation not in K.MODES:
        raise ValueError(f"propagation must be one of {', '.join(K.MODES)}, got {propagation!r}")


def check_step_input(spikes_in: object, n_in: int) -> None:
    """Refuse a step input that is not a float32 array of shape ``(n_in,)`` (the networks call
    this once per new input buffer, not every tick)."""
    if not isinstance(spikes_in, np.ndarray) or spikes_in.dtype != _F32 or spikes_in.shape != (n_in,):
        raise ValueError(f"spikes_in must be float32 of shape ({n_in},), "
                         f"got {getattr(spikes_in, 'dtype', type(spikes_in).__name__)} of shape "
                         f"{getattr(spikes_in, 'shape', None)}")


def check_run_input(xs: object, n_in: int, name: str) -> np.ndarray:
    """``xs`` as a C-contiguous float32 ``(T, n_in)`` array; refuses any other dtype or shape
    (the message names the argument ``name``)."""
    xs = np.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != n_in or xs.dtype != _F32:
        raise ValueError(f"{name} must be float32 (T, n_in={n_in}), got {xs.dtype} of shape {xs.shape}")
    return np.ascontiguousarray(xs)


def check_readout_finite(w_out: np.ndarray, b_out: np.ndarray) -> None:
    """Refuse readout weights with a NaN or an infinity."""
    if not (np.all(np.isfinite(w_out)) and np.all(np.isfinite(b_out))):
        raise ValueError("w_out and b_out must be finite; got NaN or inf")


class PropagationCounters:
    """The propagation counters of a network that keeps them in ``self._counters``
    (int64, :data:`rtsnn.snn.kernels.N_COUNTERS`; the kernels add one per projection step)."""

    _counters: np.ndarray

    @property
    def n_steps_dense(self) -> int:
        """How many projection steps propagated densely."""
        return int(self._counters[K.CNT_DENSE])

    @property
    def n_steps_event(self) -> int:
        """How many projection steps propagated event-driven."""
        return int(self._counters[K.CNT_EVENT])


class Network(PropagationCounters):
    """Simulates a :class:`~rtsnn.snn.params.Model` one ``dt_s`` step at a time.

    ``propagation``: ``'dense'``, ``'event'`` (skip silent presynaptic neurons) or ``'auto'``
    (event-driven while the fraction of neurons that spiked in the previous step is below
    ``auto_threshold``, dense otherwise). All three give bit-identical results; the choice
    only changes speed.
    """

    def __init__(self, model: Model, propagation: str = "auto", auto_threshold: float = 0.2):
        if not isinstance(model, Model):
            raise ValueError(f"Network needs a rtsnn.snn.Model, got {type(model).__name__}")
        check_propagation(propagation)
        if not (isinstance(auto_threshold, (int, float)) and 0.0 <= auto_threshold <= 1.0):
            raise ValueError(f"auto_threshold must be a fraction in [0, 1], got {auto_threshold!r}")
        model.validate()
        self.model = model
        self.propagation = propagation
        self.auto_threshold = float(auto_threshold)
        self.n_in, self.n_rec, self.n_out = model.n_in, model.n_rec, model.n_out
        s = model.constants
        f32 = np.float32
        # Python floats (the kernel rounds them to float32): numpy scalars cost ~5x more to
        # pass through numba's dispatcher.
        self._alpha, self._rho, self._kappa = float(s.alpha), float(s.rho), float(s.kappa)
        self._v_th, self._beta = float(s.v_th), float(s.beta_adapt)
        self._n_ref, self._adaptive = s.n_ref, s.adaptive
        self._mode = K.MODES[propagation]
        w = model.weights
        self._w_in, self._w_rec, self._w_out, self._b_out = w.w_in, w.w_rec, w.w_out, w.b_out
        # one float32 block holds v, a, z, r and the current scratch (rows K.S_*); the state's
        # arrays are views of it, so the packed kernel and NetworkState see the same memory
        self._fstate = np.zeros((K.N_STATE_ROWS, self.n_rec), f32)
        fs = self._fstate
        self._state = NetworkState(v=fs[K.S_V], a=fs[K.S_A], z=fs[K.S_Z],
                                   refr=np.zeros(self.n_rec, np.int32), r=fs[K.S_R],
                                   y=np.zeros(self.n_out, f32))
        self._cur = fs[K.S_CUR]
        self._counters = np.zeros(K.N_COUNTERS, np.int64)
        self._checked_in: np.ndarray | None = None
        self._step_fn = K.network_step_packed
        self._zero_in = np.zeros(self.n_in, f32)
        st = self._state
        self._y = st.y
        self._params = np.zeros(K.N_PARAMS, np.float64)
        p = self._params
        p[K.P_ALPHA], p[K.P_RHO], p[K.P_KAPPA] = self._alpha, self._rho, self._kappa
        p[K.P_VTH], p[K.P_BETA], p[K.P_NREF] = self._v_th, self._beta, self._n_ref
        p[K.P_ADAPTIVE], p[K.P_MODE], p[K.P_AUTO] = float(self._adaptive), self._mode, self.auto_threshold
        # argument tuple of the packed kernel after the input: built once, splatted per step
        self._packed = (self._w_in, self._w_rec, self._w_out, self._b_out, fs, st.refr, st.y,
                        self._counters, p)
        # the same arguments unpacked, for network_run (offline, called once per sequence)
        self._args = (self._w_in, self._w_rec, self._w_out, self._b_out, st.v, st.a, st.z, st.refr,
                      st.r, st.y, self._cur, self._counters, self._alpha, self._rho, self._kappa,
                      self._v_th, self._beta, self._n_ref, self._adaptive, self._mode, self.auto_threshold)

    @property
    def state(self) -> NetworkState:
        """The runtime state; its arrays are the kernel's buffers (modify in place only)."""
        return self._state

    # ------------------------------------------------------------------ per tick
    def step(self, spikes_in: np.ndarray) -> None:
        """Advance one ``dt_s`` with input spike counts ``spikes_in`` (float32, n_in)."""
        if spikes_in is not self._checked_in:  # the session hands the same buffer every tick
            check_step_input(spikes_in, self.n_in)
            self._checked_in = spikes_in
            # the compiled entry point for exactly these argument types (skips the dispatcher's
            # type resolution, ~0.7 us a tick); valid while the buffers are these same objects
            self._step_fn = K.compiled_entry(K.network_step_packed, (spikes_in, *self._packed))
        self._step_fn(spikes_in, *self._packed)

    def readout(self) -> np.ndarray:
        """Output ``y = w_out^T r + b_out`` after the last step (view, float32 n_out)."""
        return self._y

    def last_input(self) -> np.ndarray:
        """The input of the last :meth:`step` (the caller's buffer, not a copy; zeros before
        the first step)."""
        return self._checked_in if self._checked_in is not None else self._zero_in

    def readout_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w_out, b_out)``: the readout weights the step uses (views, not copies). An online
        learner may update them in place; the next step's output uses the new values."""
        return self._w_out, self._b_out

    def features(self) -> np.ndarray:
        """Readout trace ``r`` (view, float32 n_rec): the features a readout learner fits."""
        return self.state.r

    def spikes(self) -> np.ndarray:
        """Spikes ``z`` of the last step (view, float32 0/1, n_rec)."""
        return self.state.z

    # ------------------------------------------------------------------ control
    def set_readout(self, w_out: np.ndarray, b_out: np.ndarray) -> None:
        """Replace the readout weights (copied in place) and recompute ``y`` from ``r``."""
        w_out = np.asarray(w_out)
        b_out = np.asarray(b_out)
        if w_out.shape != self._w_out.shape:
            raise ValueError(f"w_out must have shape {self._w_out.shape} (n_rec, n_out), got {w_out.shape}")
        if b_out.shape != self._b_out.shape:
            raise ValueError(f"b_out must have shape {self._b_out.shape} (n_out,), got {b_out.shape}")
        check_readout_finite(w_out, b_out)
        self._w_out[...] = w_out
        self._b_out[...] = b_out
        K.readout_update(self.state.r, self._w_out, self._b_out, self.state.y)

    def reset_state(self) -> None:
        """Zero the runtime state (v, a, z, refr, r, y); weights and counters are kept."""
        self.state.fill_zero()
        self._counters[K.CNT_ACTIVE] = 0

    def set_state(self, state: NetworkState) -> None:
        """Copy a state (e.g. from a checkpoint) into the network's buffers."""
        self.state.assign(state)
        self._counters[K.CNT_ACTIVE] = int(np.count_nonzero(self.state.z))

    def warm_up(self) -> None:
        """Compile and run every kernel path (dense, event, run, readout) on scratch copies of
        the state, so the first real step is fast and the state is left untouched."""
        st = self.state.copy()
        cnt = np.zeros(K.N_COUNTERS, np.int64)
        cur = np.zeros(self.n_rec, np.float32)
        x = np.ones(self.n_in, np.float32)
        for mode in (K.MODE_DENSE, K.MODE_EVENT, K.MODE_AUTO):
            for _ in range(3):
                K.network_step(x, self._w_in, self._w_rec, self._w_out, self._b_out, st.v, st.a, st.z,
                               st.refr, st.r, st.y, cur, cnt, self._alpha, self._rho, self._kappa,
                               self._v_th, self._beta, self._n_ref, self._adaptive, mode,
                               self.auto_threshold)
        xs = np.zeros((2, self.n_in), np.float32)
        K.network_run(xs, self._w_in, self._w_rec, self._w_out, self._b_out, st.v, st.a, st.z, st.refr,
                      st.r, st.y, cur, cnt, self._alpha, self._rho, self._kappa, self._v_th, self._beta,
                      self._n_ref, self._adaptive, self._mode, self.auto_threshold,
                      np.zeros((2, self.n_out), np.float32), np.zeros((2, self.n_rec), np.float32))
        K.readout_update(st.r, self._w_out, self._b_out, st.y)
        fs = np.zeros_like(self._fstate)
        p = self._params.copy()
        for mode in (K.MODE_DENSE, K.MODE_EVENT, K.MODE_AUTO):
            p[K.P_MODE] = mode
            for _ in range(3):
                K.network_step_packed(x, self._w_in, self._w_rec, self._w_out, self._b_out, fs,
                                      st.refr, st.y, cnt, p)

    # ------------------------------------------------------------------ offline
    def run(self, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run ``spikes`` (float32, (T, n_in)) from the current state; return
        ``(y (T, n_out), z (T, n_rec))``. The state advances as with T calls of :meth:`step`."""
        spikes = check_run_input(spikes, self.n_in, "spikes")
        n_t = spikes.shape[0]
        ys = np.zeros((n_t, self.n_out), np.float32)
        zs = np.zeros((n_t, self.n_rec), np.float32)
        K.network_run(spikes, *self._args, ys, zs)
        return ys, zs

    # ------------------------------------------------------------------ counters
    # n_steps_dense, n_steps_event: PropagationCounters
    @property
    def n_active(self) -> int:
        """Number of neurons that spiked in the last step."""
        return int(self._counters[K.CNT_ACTIVE])
