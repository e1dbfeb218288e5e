"""``GraphNetwork``: a model graph compiled once into a schedule of kernel calls over
preallocated buffers, stepped one tick at a time (the tick allocates nothing).

Compilation (see :mod:`rtsnn.snn.graph` for the tick's semantics):

* every node except projections gets an output buffer (float32, its output size); a spiking
  node's buffer is its spike vector ``z``, an ``LI`` node's its value, ``Flatten`` aliases its
  input;
* a ``Linear`` / ``Affine`` with one source and one consumer is *fused* into the consumer: the
  consumer's accumulator gets ``W^T src (+ b)`` at the consumer's turn (dense or event-driven,
  bit-identical either way), so a recurrent projection reads its source's previous-tick spikes
  exactly as a separate node would; other projections are materialised;
* a node with one plain incoming edge reads that buffer in place; otherwise its inputs are
  summed, in edge order, into an accumulator (the first input initialises it: a projection
  with :func:`~rtsnn.snn.projection_kernels.project`'s fill, a plain edge with ``acc = 0 + src``;
  no separate fill call);
* a spiking node whose neurons all reset by subtraction at the next tick runs the branch-free
  :func:`~rtsnn.snn.neuron_kernels.spiking_update_subtract` on packed state and parameter
  blocks (bit-identical to the general :func:`~rtsnn.snn.neuron_kernels.spiking_update`, which
  the others run); the choice is made here, once.

Propagation counters: ``n_steps_dense`` / ``n_steps_event`` count projection steps, one per
projection (fused or materialised ``Linear`` / ``Affine``, ``Conv2d``, pools) per tick, by the
form it ran in; for a graph with a single projection they count ticks, as the Network's do.

:func:`build_network` returns the fused single-layer :class:`rtsnn.snn.network.Network` when
the graph is today's model (:func:`rtsnn.snn.graph.model_from_graph`), so that model keeps its
speed and its exact arithmetic; every other graph runs here. Both have the same methods.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from rtsnn.snn import kernels as K
from rtsnn.snn import neuron_kernels as NK
from rtsnn.snn import projection_kernels as PK
from rtsnn.snn.graph import Graph, GraphModel, model_from_graph
from rtsnn.snn.network import (Network, PropagationCounters, check_propagation, check_readout_finite,
                                check_run_input, check_step_input)
from rtsnn.snn.nodes import GraphError, Node

PROPAGATION = tuple(K.MODES)  # ("dense", "event", "auto")

# kinds compiled by other modules: kind -> compile function (node, src_view, out_buffer) -> op list
_EXTERNAL_COMPILERS: dict[str, Callable[..., list[tuple[Callable, tuple]]]] = {}


def register_compiler(kind: str, fn: Callable[..., list[tuple[Callable, tuple]]]) -> None:
    """Let a kernel module compile node kind ``kind`` (used by :mod:`rtsnn.snn.conv_kernels`)."""
    _EXTERNAL_COMPILERS[kind] = fn


def _f32(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float64).astype(np.float32))


class GraphNetwork(PropagationCounters):
    """Runs a :class:`~rtsnn.snn.graph.GraphModel` one tick at a time.

    ``propagation``: ``'dense'``, ``'event'`` (skip zero presynaptic entries) or ``'auto'``.
    All give bit-identical results. Under ``'auto'`` the fully connected projections run
    event-driven from every source, spiking or not (pool / Flatten outputs, analog LI values):
    the event kernel adds active rows four at a time, so it is at least as fast as the dense
    one at every density (measured 256 x 256: 0.5 vs 4.1 us at 2 % nonzero, 3.4 vs 4.7 us at
    100 %); ``Conv2d`` and the pools choose per tick by the density of their input
    (:mod:`rtsnn.snn.conv_kernels`). ``auto_threshold`` is accepted for the Network's
    signature; a graph does not use it.
    """

    def __init__(self, model: GraphModel, propagation: str = "auto", auto_threshold: float = 0.2):
        if not isinstance(model, GraphModel):
            raise ValueError(f"GraphNetwork needs a GraphModel, got {type(model).__name__}")
        check_propagation(propagation)
        model.validate()
        self.model = model
        self.graph: Graph = model.graph
        self.propagation = propagation
        self.auto_threshold = float(auto_threshold)
        g = self.graph
        self.n_in, self.n_out = g.n_in, g.n_out
        self._x = np.zeros(self.n_in, np.float32)  # placeholder input until the first step
        self._checked_in: np.ndarray | None = None
        self._counters = np.zeros(K.N_COUNTERS, np.int64)
        self._state: dict[str, dict[str, np.ndarray]] = {}
        self._buf: dict[str, np.ndarray] = {}
        self._fused: set[str] = set()
        self._blocks: dict[str, np.ndarray] = {}  # spiking nodes' float32 state blocks (rows NK.S_*)
        self._plan()
        self._ops: list[tuple[Callable, tuple]] = []
        self._bind(self._x)
        self.n_rec = int(self.features().shape[0])

    # ------------------------------------------------------------------ compile
    def _plan(self) -> None:
        g = self.graph
        for name in g.order():
            node = g.nodes[name]
            preds, succs = g.predecessors(name), g.successors(name)
            if node.kind in ("Linear", "Affine") and len(preds) == 1 and len(succs) == 1 \
                    and g.nodes[succs[0]].kind != "Flatten":
                self._fused.add(name)
        for name in g.order():
            node = g.nodes[name]
            if name in self._fused or node.kind in ("Input", "Flatten"):
                continue
            n = node.output_size()
            self._buf[name] = np.zeros(n, np.float32)
            st = self._state.setdefault(name, {})
            if node.kind in ("LIF", "CubaLIF", "ALIF", "IF"):
                # one block, rows v, isyn, a, z: the fast kernel takes it as one argument
                blk = np.zeros((NK.N_STATE_ROWS, n), np.float32)
                self._blocks[name] = blk
                st["v"], st["isyn"], st["a"] = blk[NK.S_V], blk[NK.S_ISYN], blk[NK.S_A]
                st["refr"] = np.zeros(n, np.int32)
                st["z"] = self._buf[name] = blk[NK.S_Z]
            elif node.kind == "LI":
                st["y"] = self._buf[name]
            elif node.kind == "Delay":
                depth = int(node.steps.max()) + 1  # type: ignore[attr-defined]
                st["ring"] = np.zeros((depth, n), np.float32)
                st["head"] = np.zeros(1, np.int64)
            # the Output node sums its inputs straight into its buffer
            st["acc"] = self._buf[name] if node.kind == "Output" else np.zeros(node.input_size(), np.float32)
        self._params = {name: self._node_params(self.graph.nodes[name]) for name in self._state}
        # the learner views, fixed by the graph (built once; features' view may follow the input)
        self._readout_parts = self._find_readout_parts()
        spiking = [n for n in g.order() if g.nodes[n].spiking]
        self._spikes_view = self._buf[spiking[-1]] if spiking else np.zeros(0, np.float32)
        if self._readout_parts is not None:
            self._feature_name = self._readout_parts[0]
        else:
            self._feature_name = spiking[-1] if spiking else g.order()[-1]
        self._features_view = self._spikes_view

    def _node_params(self, node: Node) -> dict[str, Any]:
        g = self.graph
        dt = g.dt_s
        if node.kind in ("LIF", "CubaLIF", "ALIF", "IF"):
            n = node.n  # type: ignore[attr-defined]
            if node.kind == "IF":
                alpha = np.ones(n)
            else:
                alpha = self._decay(node, "tau_mem_s")
            # the float parameters are the rows of one block (the fast kernel's one argument)
            blk = np.zeros((NK.N_PARAM_ROWS, n), np.float32)
            blk[NK.P_ALPHA] = _f32(alpha)
            blk[NK.P_VTH] = _f32(node.v_th)  # type: ignore[attr-defined]
            blk[NK.P_GAIN] = _f32(node.gain)  # type: ignore[attr-defined]
            blk[NK.P_LEAK] = _f32((1.0 - alpha) * node.v_leak)  # type: ignore[attr-defined]
            if node.kind == "CubaLIF":
                blk[NK.P_ALPHA_SYN] = _f32(self._decay(node, "tau_syn_s"))
            if node.kind == "ALIF":
                blk[NK.P_RHO] = _f32(self._decay(node, "tau_adapt_s"))
                blk[NK.P_BETA] = _f32(node.beta_adapt)  # type: ignore[attr-defined]
            p = {"alpha": blk[NK.P_ALPHA], "alpha_syn": blk[NK.P_ALPHA_SYN], "rho": blk[NK.P_RHO],
                 "beta": blk[NK.P_BETA], "v_th": blk[NK.P_VTH], "gain": blk[NK.P_GAIN], "leak": blk[NK.P_LEAK],
                 "block": blk, "v_reset": _f32(node.v_reset),  # type: ignore[attr-defined]
                 "reset_zero": np.ascontiguousarray(node.reset, np.uint8),  # type: ignore[attr-defined]
                 "n_ref": np.rint(node.refractory_s / dt).astype(np.int32),  # type: ignore[attr-defined]
                 "cuba": node.kind == "CubaLIF", "adaptive": node.kind == "ALIF",
                 "reset_now": node.reset_at == "now",  # type: ignore[attr-defined]
                 "strict": node.spike_if == ">", "clamp": node.reset_at == "next_clamp"}  # type: ignore[attr-defined]
            # the fast path: every neuron subtracts v_th at the next tick ('next_clamp' clamps a
            # reset to v_reset only, so with subtraction it is 'next')
            p["fast"] = not p["reset_now"] and not np.any(p["reset_zero"])
            p["flags"] = (NK.F_CUBA * p["cuba"]) | (NK.F_ADAPTIVE * p["adaptive"]) | (NK.F_STRICT * p["strict"])
            return p
        if node.kind == "LI":
            kappa = self._decay(node, "tau_s")
            return {"kappa": _f32(kappa), "gain": _f32(node.gain),  # type: ignore[attr-defined]
                    "leak": _f32((1.0 - kappa) * node.v_leak)}  # type: ignore[attr-defined]
        if node.kind == "Delay":
            return {"steps": np.ascontiguousarray(node.steps, np.int32)}  # type: ignore[attr-defined]
        return {}

    def _decay(self, node: Node, fld: str) -> np.ndarray:
        tau = np.asarray(getattr(node, fld), np.float64)
        if self.graph.integration == "euler" and np.any(tau < self.graph.dt_s):
            raise GraphError(f"node {node.name!r}: {fld}: must be >= dt_s ({self.graph.dt_s:g} s) under 'euler' "
                             f"integration (decay 1 - dt/tau would be negative), got {float(tau.min()):g}")
        return self.graph.decay(tau)

    def _view(self, name: str, x: np.ndarray) -> np.ndarray:
        """The buffer holding node ``name``'s output (follows Flatten aliases)."""
        node = self.graph.nodes[name]
        if node.kind == "Input":
            return x
        if node.kind == "Flatten":
            preds = self.graph.predecessors(name)
            if len(preds) == 1 and preds[0] not in self._fused:
                return self._view(preds[0], x)
            return self._state[name]["acc"]
        return self._buf[name]

    def _project(self, src: np.ndarray, proj: Node, acc: np.ndarray, fill: bool) -> tuple[Callable, tuple]:
        """The op adding projection ``proj`` (Linear / Affine) of ``src`` into ``acc`` (after
        zeroing it when ``fill``): one :func:`~rtsnn.snn.projection_kernels.project` call."""
        ctl = np.zeros(PK.N_CONTROL, np.int64)
        ctl[PK.C_EVENT] = self.propagation != "dense"  # 'auto' too: see the class docstring
        ctl[PK.C_FILL] = fill
        bias = getattr(proj, "bias", None) if proj.kind == "Affine" else None
        ctl[PK.C_BIAS] = bias is not None
        if bias is None:
            bias = np.zeros(0, np.float32)
        return PK.project, (src, proj.weight, acc, bias, ctl, self._counters)  # type: ignore[attr-defined]

    def _bind(self, x: np.ndarray) -> None:
        """Build the op list for input buffer ``x`` (rebuilt only when the caller's buffer changes)."""
        g = self.graph
        ops: list[tuple[Callable, tuple]] = []
        zero = np.float32(0.0)
        for name in g.order():
            node = g.nodes[name]
            if name in self._fused or node.kind == "Input":
                continue
            preds = g.predecessors(name)
            st = self._state.get(name)
            if node.kind == "Flatten" and (len(preds) == 1 and preds[0] not in self._fused):
                continue  # alias
            acc = st["acc"]
            if len(preds) == 1 and preds[0] not in self._fused and node.kind != "Output":
                inp = self._view(preds[0], x)
            else:
                inp = acc
                if not preds:
                    ops.append((NK.fill, (acc, zero)))
                # the first input initialises the accumulator (no separate fill call)
                for k, src in enumerate(preds):
                    if src in self._fused:
                        proj = g.nodes[src]
                        (psrc,) = g.predecessors(src)
                        ops.append(self._project(self._view(psrc, x), proj, acc, fill=k == 0))
                    else:
                        ops.append((PK.assign_sum if k == 0 else NK.add_into, (self._view(src, x), acc)))
            ops.extend(self._node_ops(name, node, inp))
        self._ops = [(K.compiled_entry(fn, args), args) for fn, args in ops]
        self._features_view = self._view(self._feature_name, x)
        self._checked_in = x if x is not self._x else None

    def _node_ops(self, name: str, node: Node, inp: np.ndarray) -> list[tuple[Callable, tuple]]:
        st, p, out = self._state.get(name, {}), self._params.get(name, {}), self._buf.get(name)
        if node.kind in ("LIF", "CubaLIF", "ALIF", "IF"):
            if p["fast"]:
                return [(NK.spiking_update_subtract, (inp, self._blocks[name], st["refr"], p["n_ref"], p["block"],
                                                      p["flags"]))]
            return [(NK.spiking_update, (inp, st["v"], st["isyn"], st["a"], st["z"], st["refr"], p["alpha"],
                                         p["alpha_syn"], p["rho"], p["beta"], p["v_th"], p["gain"], p["leak"],
                                         p["v_reset"], p["reset_zero"], p["n_ref"], p["cuba"], p["adaptive"],
                                         p["reset_now"], p["strict"], p["clamp"]))]
        if node.kind == "LI":
            return [(NK.li_update, (inp, out, p["kappa"], p["gain"], p["leak"]))]
        if node.kind == "Delay":
            return [(NK.delay_update, (inp, st["ring"], st["head"], p["steps"], out))]
        if node.kind == "Output":
            return [] if inp is out else [(NK.fill, (out, np.float32(0.0))), (NK.add_into, (inp, out))]
        if node.kind in ("Linear", "Affine"):  # materialised projection
            return [self._project(inp, node, out, fill=True)]
        if node.kind == "Flatten":
            return []  # its accumulator is its output
        fn = _EXTERNAL_COMPILERS.get(node.kind)
        if fn is None:
            from rtsnn.snn import conv_kernels  # noqa: F401  (registers the convolutional kinds)

            fn = _EXTERNAL_COMPILERS.get(node.kind)
        if fn is None:
            raise GraphError(f"node {name!r}: kind {node.kind} has no kernel in this rtsnn")
        from rtsnn.snn.counted_kernels import counted

        return counted(fn(node, inp, out, self.propagation), self._counters)

    # ------------------------------------------------------------------ per tick
    def step(self, spikes_in: np.ndarray) -> None:
        """Advance one tick with input ``spikes_in`` (float32, n_in)."""
        if spikes_in is not self._checked_in:
            check_step_input(spikes_in, self.n_in)
            self._bind(spikes_in)
            self._checked_in = spikes_in
        for fn, args in self._ops:
            fn(*args)

    def readout(self) -> np.ndarray:
        """The Output node's values after the last tick (view)."""
        return self._buf[self.graph.output_name]

    def last_input(self) -> np.ndarray:
        return self._checked_in if self._checked_in is not None else self._x

    # ------------------------------------------------------------------ learner views
    def readout_parts(self) -> tuple[str, str] | None:
        """``(trace, affine)`` node names when the output is ``LI -> Affine -> Output`` (the
        readout a learner may refit), else None."""
        return self._readout_parts

    def _find_readout_parts(self) -> tuple[str, str] | None:
        g = self.graph
        preds = g.predecessors(g.output_name)
        if len(preds) != 1 or g.nodes[preds[0]].kind != "Affine":
            return None
        aff = preds[0]
        src = g.predecessors(aff)
        if len(src) != 1 or g.nodes[src[0]].kind != "LI":
            return None
        return src[0], aff

    def features(self) -> np.ndarray:
        """The readout trace (the LI node before the output Affine), else the last spiking
        node's spikes (view)."""
        return self._features_view

    def spikes(self) -> np.ndarray:
        """Spikes of the last spiking node in evaluation order (view; empty without one)."""
        return self._spikes_view

    def readout_weights(self) -> tuple[np.ndarray, np.ndarray]:
        parts = self.readout_parts()
        if parts is None:
            raise ValueError("this graph's output is not an LI -> Affine readout; it has no readout weights")
        aff = self.graph.nodes[parts[1]]
        return aff.weight, aff.bias  # type: ignore[attr-defined]

    def set_readout(self, w_out: np.ndarray, b_out: np.ndarray) -> None:
        w, b = self.readout_weights()
        w_out, b_out = np.asarray(w_out), np.asarray(b_out)
        if w_out.shape != w.shape or b_out.shape != b.shape:
            raise ValueError(f"readout must be {w.shape} and {b.shape}, got {w_out.shape} and {b_out.shape}")
        check_readout_finite(w_out, b_out)
        w[...] = w_out
        b[...] = b_out
        y = self.readout()
        K.readout_update(self.features(), w, b, y)

    # ------------------------------------------------------------------ state
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every state array as ``'<node>.<name>'`` -> view (what a checkpoint stores)."""
        out = {}
        for node, st in self._state.items():
            for key, arr in st.items():
                if key != "acc":
                    out[f"{node}.{key}"] = arr
        out[f"{self.graph.output_name}.y"] = self.readout()
        return out

    def reset_state(self) -> None:
        for st in self._state.values():
            for arr in st.values():
                arr[...] = 0
        for buf in self._buf.values():
            buf[...] = 0
        self._counters[K.CNT_ACTIVE] = 0

    def warm_up(self) -> None:
        """Compile every op (one tick on the current input buffer, then the state is restored)."""
        saved = {k: v.copy() for k, v in self.state_arrays().items()}
        accs = {n: st["acc"].copy() for n, st in self._state.items()}
        bufs = {n: b.copy() for n, b in self._buf.items()}
        counters = self._counters.copy()
        for fn, args in self._ops:
            fn(*args)
        self._counters[...] = counters
        for k, v in self.state_arrays().items():
            v[...] = saved[k]
        for n, a in accs.items():
            self._state[n]["acc"][...] = a
        for n, b in bufs.items():
            self._buf[n][...] = b

    def run(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run ``xs`` (T, n_in) float32 from the current state; ``(y (T, n_out), z (T, n_spk))``
        with ``z`` the spikes of :meth:`spikes`' node."""
        xs = check_run_input(xs, self.n_in, "xs")
        buf = np.zeros(self.n_in, np.float32)
        ys = np.zeros((xs.shape[0], self.n_out), np.float32)
        zs = np.zeros((xs.shape[0], self.spikes().shape[0]), np.float32)
        for t in range(xs.shape[0]):
            buf[...] = xs[t]
            self.step(buf)
            ys[t] = self.readout()
            zs[t] = self.spikes()
        return ys, zs

    # n_steps_dense, n_steps_event (one count per projection per tick): PropagationCounters

    @property
    def n_active(self) -> int:
        return int(np.count_nonzero(self.spikes()))


def build_network(model: Any, propagation: str = "auto", auto_threshold: float = 0.2) -> Any:
    """The network that runs ``model`` (a :class:`rtsnn.snn.params.Model` or a
    :class:`GraphModel`): the fused single-layer Network for today's model, else a GraphNetwork."""
    from rtsnn.snn.params import Model

    if isinstance(model, Model):
        return Network(model, propagation=propagation, auto_threshold=auto_threshold)
    if isinstance(model, GraphModel):
        single = model_from_graph(model)
        if single is not None:
            return Network(single, propagation=propagation, auto_threshold=auto_threshold)
        return GraphNetwork(model, propagation=propagation, auto_threshold=auto_threshold)
    raise ValueError(f"expected a Model or GraphModel, got {type(model).__name__}")


def simulate(model: Any, xs: np.ndarray, propagation: str = "auto") -> np.ndarray:
    """Outputs (T, n_out) float32 of ``model`` over inputs ``xs`` (T, n_in) from a fresh state."""
    net = build_network(model, propagation=propagation)
    return net.run(np.ascontiguousarray(xs, np.float32))[0]
