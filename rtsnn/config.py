"""Session configuration: YAML validated by pydantic, units in the field names.

Every error names the file, the dotted key and what was expected, e.g.::

    configs/bad.yaml: session.dt_s: Input should be greater than 0 (got -0.001)

Plugin options (``source.options``, ``encoder.options`` ...) are checked against the chosen
plugin's constructor signature by :func:`rtsnn.plugins.build`, with the same message form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rtsnn import limits
from rtsnn.errors import RtsnnValueError


class ConfigError(RtsnnValueError):
    """A configuration problem; the message names file, key and expectation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginSpec(_Strict):
    kind: str = Field(description="name of the plugin in its entry-point group")
    options: dict[str, Any] = Field(default_factory=dict)


MAX_NAME_CHARS = 100  # session.name: one folder-name component, at most this long


def session_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a session folder inside ``out_dir`` (None: it can). Refused,
    never repaired: empty, longer than :data:`MAX_NAME_CHARS`, a path separator, ``..``
    anywhere, a leading ``.`` (a hidden folder), NUL or any other control character."""
    import os

    if not isinstance(name, str) or not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long (at most {MAX_NAME_CHARS})"
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains a control character"
    if name.startswith("."):
        return "starts with '.'"
    return None


class SessionSettings(_Strict):
    name: str = "session"
    dt_s: float = Field(1e-3, gt=0, le=1.0)

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, v: str) -> str:
        why = session_name_problem(v)
        if why is not None:
            raise ValueError(f"{why}; it names the session folder inside session.out_dir, so it must be one plain "
                             f"name (e.g. 'lab-rig-2')")
        return v

    @field_validator("dt_s")
    @classmethod
    def _dt_floor(cls, v: float) -> float:
        if v < limits.MIN_DT_S:
            raise ValueError(f"dt_s {v:g} s is below the shortest tick {limits.MIN_DT_S:g} s a session keeps (each "
                             f"tick costs tens of microseconds of overhead beside the network; set the environment "
                             f"variable RTSNN_MIN_DT_S to lower it)")
        return v

    duration_s: float | None = Field(None, gt=0, description="None: run until stopped")
    budget_us: float = Field(800.0, gt=0, description="compute budget per tick")
    max_lag_ticks: int = Field(50, ge=1, description="behind by more: skip ticks (counted)")
    out_dir: str = "sessions"
    metrics_interval_s: float = Field(1.0, gt=0)
    warmup_ticks: int = Field(200, ge=0, description="ticks run before timing starts")
    spin_us: float = Field(200.0, ge=0, description="busy-wait before each tick start")
    tick_phase_us: float | None = Field(None, ge=0, description=(
        "None: ticks start whenever the session does; a value: every tick starts at that offset "
        "after a multiple of dt_s on the machine's monotonic clock, so a source on the same grid "
        "(the demo's synthetic user pushes at offset 0) is read a fixed time after each push"))
    record_outputs: bool = True
    realtime: Literal["auto", "fifo", "nice", "none"] = Field(
        "auto", description="compute-thread scheduling: fifo = SCHED_FIFO, nice = raised priority, "
                            "auto = fifo if permitted, else nice if permitted, else unchanged")
    rt_priority: int = Field(10, ge=1, le=99, description="SCHED_FIFO priority of the compute thread")
    background_realtime: bool = Field(True, description=(
        "when the compute thread got SCHED_FIFO (and rt_priority >= 2): the session's threads that keep their "
        "work between ticks (rtsnn.clock.SLACK: the caller of run(), the I/O loop and monitor, the LSL watch "
        "threads, the recorder) run at SCHED_FIFO one priority below it while the session runs, so that "
        "ordinary load cannot preempt one of them while it holds the GIL the compute thread waits for; threads "
        "they start begin at ordinary priority. false: they keep their scheduling"))
    max_samples_per_tick: int = Field(1024, ge=1, le=1 << 22, description=(
        "rows a tick can take from the source; more wait for the next tick (event cameras: "
        "~10^4 events per ms, set e.g. 65536)"))
    monitor: bool = Field(True, description="publish <name>-monitor/-raster/-outputs LSL streams for "
                                            "`rtsnn dashboard` (about 1 us per tick on the compute thread)")
    max_catchup_s: float = Field(5.0, ge=0, description="warm-up continues (up to this long) until "
                                                        "the source's start-up backlog is drained")
    record: bool = Field(False, description="record what the session consumed (inputs, teacher, rewards), "
                                            "emitted (outputs + targets) and was told (control events) to "
                                            "recording.xdf in the session folder, written incrementally")
    pace: Literal["realtime", "max"] = Field("realtime", description=(
        "realtime: ticks on absolute deadlines; max: as fast as possible, no waiting, learning applied "
        "inline, for a finite source (e.g. xdf_file): same outputs on every run"))


class NeuronConfig(_Strict):
    model: Literal["lif", "alif"] = "alif"
    tau_mem_s: float = Field(20e-3, gt=0)
    tau_adapt_s: float = Field(200e-3, gt=0)
    beta_adapt: float = Field(0.1, ge=0)
    v_th: float = Field(1.0, gt=0)
    refractory_s: float = Field(2e-3, ge=0)
    tau_out_s: float = Field(50e-3, gt=0)


class RandomModelConfig(_Strict):
    n_rec: int = Field(256, ge=1)
    n_out: int = Field(2, ge=1)

    @field_validator("n_rec")
    @classmethod
    def _n_rec_limit(cls, v: int) -> int:
        if v > limits.MAX_NEURONS:
            raise ValueError(limits.above("n_rec", v, limits.MAX_NEURONS, "RTSNN_MAX_NEURONS", " neurons"))
        return v

    @field_validator("n_out")
    @classmethod
    def _n_out_limit(cls, v: int) -> int:
        if v > limits.MAX_OUTPUTS:
            raise ValueError(limits.above("n_out", v, limits.MAX_OUTPUTS, "RTSNN_MAX_OUTPUTS", " outputs"))
        return v

    seed: int = 0
    input_gain: float | None = Field(None, gt=0, description="None: the model's default scaling")
    spectral_radius: float = Field(0.5, ge=0)
    neuron: NeuronConfig = NeuronConfig()
    output_labels: list[str] | None = None
    output_units: list[str] | None = None


class ModelConfig(_Strict):
    path: str | None = Field(None, description="a model file (.npz), or a NIR graph (.nir) written by rtsnn "
                                               "model convert; else a random reservoir")
    random: RandomModelConfig = RandomModelConfig()


class SyntheticUserConfig(_Strict):
    """Start the simulated motor-cortex user (a separate process publishing over LSL) with
    the session, so a config can run with nothing external."""

    prefix: str = "rtsnn-synth"
    n_neurons: int = Field(96, ge=1)

    @field_validator("n_neurons")
    @classmethod
    def _n_neurons_limit(cls, v: int) -> int:
        if v > limits.MAX_CHANNELS:
            raise ValueError(limits.above("n_neurons", v, limits.MAX_CHANNELS, "RTSNN_MAX_CHANNELS", " channels"))
        return v

    seed: int = 0
    baseline_hz: float = Field(10.0, ge=0)
    depth_hz: float = Field(20.0, ge=0)
    drift_deg_per_s: float = 0.0
    dropout_fraction: float = Field(0.0, ge=0, le=1)
    dropout_at_s: float | None = Field(None, ge=0)
    # scheduled drift (issue 4 item 5): a step rotation of every preferred direction
    rotation_deg: float = Field(0.0, allow_inf_nan=False, description="step rotation of every preferred direction")
    rotation_at_s: float | None = Field(None, ge=0, description="when the step rotation happens (None: never)")
    unique_prefix: bool = Field(True, description="append the process id so parallel runs never mix")


class SessionConfig(_Strict):
    session: SessionSettings = SessionSettings()
    synthetic_user: SyntheticUserConfig | None = None
    source: PluginSpec
    teacher: PluginSpec | None = Field(None, description="teaching-signal source (target outputs)")
    encoder: PluginSpec
    model: ModelConfig = ModelConfig()
    backend: PluginSpec = PluginSpec(kind="numba_cpu")
    learner: PluginSpec | None = None
    reward: PluginSpec | None = Field(None, description="reward source for reward-driven learners "
                                                        "(entry-point group rtsnn.rewards)")
    sinks: list[PluginSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _budget_fits_tick(self) -> "SessionConfig":
        if self.session.budget_us > self.session.dt_s * 1e6:
            raise ValueError(
                f"session.budget_us ({self.session.budget_us}) must not exceed the tick length "
                f"dt_s*1e6 ({self.session.dt_s * 1e6:g} us)"
            )
        phase = self.session.tick_phase_us
        # compared in whole ns, as DeadlineClock.start receives it: 999.9996 us rounds to 1 ms
        if phase is not None and round(phase * 1e3) >= round(self.session.dt_s * 1e9):
            raise ValueError(f"session.tick_phase_us ({phase}) must be less than the tick length "
                             f"dt_s*1e6 ({self.session.dt_s * 1e6:g} us)")
        return self


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_s = "" if e["type"] == "missing" else f" (got {got!r})"
        if e["type"] == "extra_forbidden":
            lines.append(f"{origin}: {key}: unknown key{got_s}")
        else:
            msg = e["msg"].removeprefix("Value error, ")  # pydantic's prefix on our own validators' words
            lines.append(f"{origin}: {key}: {msg}{got_s}")
    return "\n".join(lines)


def parse_config(data: Any, origin: str = "<config>") -> SessionConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return SessionConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def load_config(path: str | Path) -> SessionConfig:
    """Read and validate a YAML session config; raise ConfigError naming file and key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    from rtsnn.yaml_safe import YamlLimitError, load_yaml_file

    try:
        data = load_yaml_file(p)  # alias-expansion and size limits
    except YamlLimitError as err:
        raise ConfigError(str(err)) from None
    return parse_config(data, str(p))


def config_to_yaml(cfg: SessionConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
