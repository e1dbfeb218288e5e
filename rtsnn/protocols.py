"""The small contracts every pluggable stage implements.

One tick of a session calls, in the compute thread and in this order::

    n = source.pull(samples, timestamps)        # ingest: non-blocking, fills preallocated buffers
    encoder.encode(samples, n, spikes_in)       # encode: writes spikes_in in place
    backend.step(spikes_in)                     # step:   advances the network one dt
    y = backend.readout()                       # readout: view of the output vector
    learner.observe(backend, target)            # learn:  cheap per-tick work; heavy work deferred
    sink.emit(y, t_source)                      # emit:   non-blocking hand-off

None of these calls may block, allocate per tick, or do I/O that can wait on another
process: anything slow goes through a ring buffer to the I/O thread. Blocking set-up
(resolving a stream, opening a file, compiling kernels) happens in ``open``/``warm_up``
before the first tick.

Plugins register a class under one of the entry-point groups in ``GROUPS``; the class is
constructed with keyword arguments taken from the session config.

Optional for a stage of any group: ``lsl_streams() -> list[dict[str, str]]``, the LSL streams
it reads or publishes, one dict each with ``name``, ``type`` and ``direction`` (``"in"`` |
``"out"``), plus ``source_id`` / ``host`` / ``match`` (the resolve predicate) where known. An
inlet reports the stream it resolved once ``open`` has run. ``rtsnn run`` and ``rtsnn demo``
print these names at start (:meth:`rtsnn.runtime.session.Session.lsl_streams`); a stage
without the method is simply not listed (:class:`ListsStreams`).

Optional parts of a contract are declared here as protocols of their own (:class:`MayFail`,
:class:`TakesEvents`, :class:`ListsStreams`, :class:`Finite`, :class:`ReportsGaps`,
:class:`DescribesChannels`, :class:`KeepsTick`, :class:`Opens`, :class:`ControlInput`,
:class:`RepliesToControl`, :class:`TakesRewards`, :class:`ChecksModel`,
:class:`TargetOptional`, :class:`ReadyAfterPrepare`, :class:`Calibrates`,
:class:`ExposesSpikes`). The session checks each stage against them once (``isinstance``; the
protocols are runtime-checkable), when it builds and opens its stages, and then calls the
parts a stage has without asking again: a stage never sees a probe per tick.

The session's tick reaches a stage in one declared way (:class:`StageContext`): a constructor
parameter named ``context`` receives the session's :class:`StageContext` (tick ``dt_s``,
session name, pace, clock, ...). For plugins written before it, a constructor parameter named
``dt_s`` still receives ``context.dt_s`` when the config leaves ``dt_s`` out (a config value
that differs from ``session.dt_s`` is refused). Both are read from the constructor's signature
by :func:`rtsnn.plugins.build`, as the check of the options reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

GROUPS = ("rtsnn.sources", "rtsnn.encoders", "rtsnn.sinks", "rtsnn.backends", "rtsnn.learners",
          "rtsnn.rewards", "rtsnn.recording_formats", "rtsnn.backend_reports")

RECORDING_FORMATS = "rtsnn.recording_formats"

PACES = ("realtime", "max")


@dataclass(frozen=True)
class StageContext:
    """What a session tells the stages it builds, handed over once, at construction.

    A plugin class that wants it declares a constructor parameter named ``context`` (optional,
    default None, so that the class can also be built outside a session, e.g. by
    ``rtsnn config check`` or a test); :func:`rtsnn.plugins.build` passes it. A parameter named
    ``dt_s`` receives ``dt_s`` below when the config gives none (the older way, kept for plugins
    that take it, e.g. rtsnn-dvs's ``dvs_file``).

    ``dt_s``: the tick (s), one ``backend.step`` each. ``session_name``: ``session.name``.
    ``pace``: ``"realtime"`` (ticks paced by the clock) or ``"max"`` (offline, as fast as the
    source delivers). ``clock``: the clock input timestamps and latencies are on (the LSL
    clock, s; ``pylsl.local_clock`` in a session). ``max_samples_per_tick``: the rows of the
    preallocated buffers ``pull`` fills.
    """

    dt_s: float
    session_name: str = "rtsnn"
    pace: str = "realtime"
    clock: Callable[[], float] | None = None
    max_samples_per_tick: int = 4096

    def __post_init__(self) -> None:
        if not (isinstance(self.dt_s, (int, float)) and self.dt_s > 0):
            raise ValueError(f"StageContext.dt_s must be a number > 0, got {self.dt_s!r}")
        if self.pace not in PACES:
            raise ValueError(f"StageContext.pace must be one of {PACES}, got {self.pace!r}")


@runtime_checkable
class RecordingFormat(Protocol):
    """A recording file format added by a plugin (group ``rtsnn.recording_formats``; the
    entry-point name is the format's name, as ``fmt=`` / ``--format`` takes it). The class is
    constructed without arguments. The recording layer (:mod:`rtsnn.recording.plugins`) asks
    it only about files whose suffix is none of its own formats': first the formats whose
    ``suffixes`` hold the file's suffix, then ``sniff`` for a file with no known suffix."""

    suffixes: tuple[str, ...]  # lower-case file suffixes it claims, e.g. (".raw",)

    def sniff(self, head: bytes) -> bool:
        """True when the file's first bytes (up to 1 KiB) are this format."""

    def read(self, path: str) -> Any:
        """Every stream of the file as an :class:`rtsnn.recording.xdf_reader.Recording` (timestamps
        float64 s, repairs recorded on it); ValueError with one line naming the file on bad input."""


@runtime_checkable
class Source(Protocol):
    """A stream of samples (n_samples, n_channels) with one timestamp (LSL clock, s) each."""

    n_channels: int

    def open(self) -> None:
        """Blocking set-up (resolve, connect); raises with a clear message on mismatch."""

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        """Copy every sample that arrived since the last call into the buffers; return n.

        ``samples_out`` is float32 (max_samples, n_channels), ``timestamps_out`` float64
        (max_samples,). Never blocks. Repairs (NaN, timestamp order) are applied here and
        counted in ``stats()``.
        """

    def stats(self) -> dict[str, Any]:
        """Counters: samples, repaired, dropped, gaps, reconnects, ... (JSON-serialisable)."""

    def close(self) -> None: ...


@runtime_checkable
class Encoder(Protocol):
    """Turns the samples of one tick into one input spike (count) vector."""

    n_channels: int  # input channels expected
    n_out: int  # spike channels produced

    def encode(self, samples: np.ndarray, n: int, spikes_out: np.ndarray) -> None:
        """Write the tick's spikes (float32, n_out) from ``samples[:n]`` into ``spikes_out``."""

    def reset(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """Runs the SNN one tick at a time."""

    n_in: int
    n_rec: int
    n_out: int

    def warm_up(self) -> None:
        """Compile and exercise every kernel once so the first tick is not slow."""

    def step(self, spikes_in: np.ndarray) -> None:
        """Advance the network one dt with input spikes (float32, n_in)."""

    def readout(self) -> np.ndarray:
        """The output vector (float32, n_out) after the last step; a view, not a copy."""

    def reset_state(self) -> None: ...

    # Optional, for online learners: ``readout_weights() -> (w_out, b_out)`` views that the
    # next step uses (in-place updates take effect then), and ``features()`` (the readout
    # trace r, float32 n_rec).


@runtime_checkable
class RewardSource(Protocol):
    """Scalar reward for reward-driven learners (group ``rtsnn.rewards``): an LSL stream, an
    MQTT topic, a task adapter. Rewards that arrive between polls are summed."""

    def poll(self) -> tuple[float, float] | None:
        """``(reward, t_s)`` received since the last poll, or None; never blocks."""

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class MayFail(Protocol):
    """Optional for a stage of any group: ``failure()`` says why the stage cannot work at all
    (e.g. the broker refused a sink's login), None while it can. A session ends with a
    non-zero status when a stage reports a failure."""

    def failure(self) -> str | None: ...


@runtime_checkable
class TakesEvents(Protocol):
    """Optional for a stage of any group: ``take_events()`` hands over the events the stage
    noted since the last call (e.g. an LSL source that refused an impostor stream), each
    ``(text, t_s)`` with ``t_s`` on the LSL clock, and forgets them; it never blocks. The
    session calls it on its I/O thread (never per tick in the compute thread), writes each
    event into its recording (``session.record``) and counts them (summary ``stage_events``)."""

    def take_events(self) -> list[tuple[str, float]]: ...


@runtime_checkable
class ListsStreams(Protocol):
    """Optional for a stage of any group: the LSL streams it reads or publishes (see the module
    docstring); listed at start by ``rtsnn run`` / ``rtsnn demo``."""

    def lsl_streams(self) -> list[dict[str, str]]: ...


@runtime_checkable
class Finite(Protocol):
    """Optional for a source: ``finished`` turns True once it has delivered everything it will
    (a file played to its end). ``session.pace: max`` needs it (or ``session.duration_s``): the
    run ends when it turns True."""

    finished: bool


@runtime_checkable
class ReportsGaps(Protocol):
    """Optional for a source: ``in_gap`` is True while its stream is known to be interrupted
    (an attribute or a property, read once per tick: it must be cheap). The session counts such
    ticks (``gap_ticks``)."""

    in_gap: bool


@runtime_checkable
class DescribesChannels(Protocol):
    """Optional for a source: what its channels are, for the session's recording
    (``session.record``): ``channel_labels`` (one per channel, or empty), ``channel_units``
    (one per channel, or empty) and ``nominal_srate_hz`` (0: irregular)."""

    channel_labels: list[str]
    channel_units: list[str]
    nominal_srate_hz: float


@runtime_checkable
class KeepsTick(Protocol):
    """Optional for a source or an encoder that works in ticks of its own (a file source
    windowing by tick, a rate encoder): ``dt_s``, its tick (s). The session refuses to run
    when it differs from ``session.dt_s`` (rates and file windows would be off by the ratio)."""

    dt_s: float


@runtime_checkable
class Opens(Protocol):
    """Optional for a reward source: ``open()``, blocking set-up before the first tick (sources
    and sinks always have it)."""

    def open(self) -> None: ...


@runtime_checkable
class ControlInput(Protocol):
    """Optional for a source, teacher or reward source that also receives control messages (an
    MQTT control topic, the local control socket): ``poll_control()`` hands over the
    :class:`rtsnn.control_messages.ControlMessage` s received since the last call, never
    blocking. Called on the session's I/O thread, which applies them to the learner."""

    def poll_control(self) -> list[Any]: ...


@runtime_checkable
class RepliesToControl(Protocol):
    """Optional for a :class:`ControlInput` with a reply path (the control socket):
    ``reply(msg, ok, reason)`` answers a message whose ``reply_to`` is set, non-blocking."""

    def reply(self, msg: Any, ok: bool, reason: str = "") -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Receives decoded outputs; ``emit`` must never block the tick."""

    def open(self, channel_labels: list[str], units: list[str]) -> None: ...

    def emit(self, values: np.ndarray, t_source: float) -> None:
        """Hand over one output vector; ``t_source`` is the LSL timestamp of the newest
        input sample it was decoded from (for end-to-end latency downstream)."""

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class Learner(Protocol):
    """Online learning.

    ``attach`` is called once before warm-up (allocate everything there). ``observe`` runs
    every tick inside the budget (trace updates, accumulation). When ``wants_apply()`` turns
    true the session calls ``prepare()`` on the I/O thread (heavy work: solves, large
    reductions) and then ``apply(backend)`` on the compute thread at the first tick with
    budget left: learning defers, inference never waits for it.

    ``observe`` is called on ticks that have a teaching target; a learner with the class
    attribute ``needs_target = False`` (reward-driven) is called every tick, with ``target``
    None until one arrives. ``observe`` runs between ``readout`` and the sinks and may write into
    the readout view (e.g. exploration noise). A learner that takes rewards defines
    ``set_reward_source(source)``; the session passes it the source built from ``reward:``.
    Optional: ``pause_learning()``, ``resume_learning()``, ``set_learning_rate(lr)`` (control
    messages, called from the I/O thread) and ``close()`` (session end, e.g. a last checkpoint).
    """

    def attach(self, backend: Backend, dt_s: float) -> None: ...

    def observe(self, backend: Backend, target: np.ndarray | None) -> None: ...

    def prepare(self) -> None: ...

    def wants_apply(self) -> bool: ...

    def apply(self, backend: Backend) -> None: ...

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class TakesRewards(Protocol):
    """Optional for a learner: it learns from reward; the session passes it the reward source
    built from the config's ``reward:`` section (a config with ``reward:`` and a learner without
    this is refused)."""

    def set_reward_source(self, source: RewardSource) -> None: ...


@runtime_checkable
class ChecksModel(Protocol):
    """Optional for a learner: ``model_problem(model)`` says (one line) why it cannot train this
    model, None when it can; asked before any I/O, the answer refuses the config."""

    def model_problem(self, model: Any) -> str | None: ...


@runtime_checkable
class TargetOptional(Protocol):
    """Optional for a learner: the class attribute ``needs_target``; False (reward-driven)
    makes the session call ``observe`` every tick, with ``target`` None until one arrives.
    Without it, ``observe`` runs on ticks that have a target."""

    needs_target: bool


@runtime_checkable
class ReadyAfterPrepare(Protocol):
    """Optional for a learner: ``ready()`` after ``prepare()``, whether ``apply`` has anything to
    install (False: the prepared step is dropped). Without it, a prepare is always applied."""

    def ready(self) -> bool: ...


@runtime_checkable
class Calibrates(Protocol):
    """Optional for a learner: ``calibrated`` (attribute or property) is False while its
    outputs are not yet a decoder (a readout still collecting calibration data); the session's
    R^2 counts only ticks where it is True. Without it, every tick with a target counts."""

    calibrated: bool


@runtime_checkable
class ExposesSpikes(Protocol):
    """Optional for a backend: ``spikes()``, a view of the recurrent neurons' spikes of the last
    step (float 0/1); the session's monitor draws its raster from it."""

    def spikes(self) -> np.ndarray: ...
