"""The session's StageContext reaches a stage the one declared way (a ``context`` constructor
parameter; ``dt_s`` for older plugins), and optional contract parts are read once."""

import pytest

from rtsnn import plugins
from rtsnn.config import ConfigError
from rtsnn.protocols import Finite, ReportsGaps, StageContext
from rtsnn.runtime.build import _with_session_dt, optional_parts

CTX = StageContext(dt_s=2e-3, session_name="lab", pace="max", clock=lambda: 1.5, max_samples_per_tick=64)


class WantsContext:
    def __init__(self, n_channels: int = 2, context: StageContext | None = None):
        self.n_channels, self.context = n_channels, context


class TakesTick:
    def __init__(self, n_channels: int = 2, dt_s: float = 1e-3):
        self.n_channels, self.dt_s = n_channels, dt_s


class DeclaresNothing:
    def __init__(self, n_channels: int = 2):
        self.n_channels = n_channels


@pytest.fixture
def registry(monkeypatch):
    classes = {"ctx": WantsContext, "tick": TakesTick, "plain": DeclaresNothing}
    monkeypatch.setattr(plugins, "load", lambda group, name: classes[name])


def test_a_context_parameter_receives_the_session_context(registry):
    stage = plugins.build("rtsnn.sources", "ctx", {"n_channels": 3}, "source", "s.yaml", context=CTX)
    assert stage.context is CTX and stage.n_channels == 3
    assert stage.context.dt_s == 2e-3 and stage.context.session_name == "lab" and stage.context.clock() == 1.5


def test_a_dt_s_parameter_receives_the_tick_unless_the_config_gives_one(registry):
    assert plugins.build("rtsnn.sources", "tick", {}, "source", context=CTX).dt_s == 2e-3
    assert plugins.build("rtsnn.sources", "tick", {"dt_s": 5e-3}, "source", context=CTX).dt_s == 5e-3
    assert plugins.build("rtsnn.sources", "tick", {}, "source").dt_s == 1e-3  # no session: its own default
    assert _with_session_dt("rtsnn.sources", "tick", {}, 4e-3) == {"dt_s": 4e-3}
    assert _with_session_dt("rtsnn.sources", "plain", {}, 4e-3) == {}


def test_a_stage_that_declares_nothing_gets_nothing(registry):
    assert plugins.build("rtsnn.sources", "plain", {"n_channels": 5}, "source", context=CTX).n_channels == 5
    assert plugins.build("rtsnn.sources", "ctx", {}, "source").context is None


def test_context_as_a_config_option_is_refused_naming_the_key(registry):
    with pytest.raises(ConfigError, match=r"^s\.yaml: source\.options: context: set by the session"):
        plugins.build("rtsnn.sources", "ctx", {"context": {"dt_s": 1}}, "source", "s.yaml", context=CTX)


@pytest.mark.parametrize("kw, match", [({"dt_s": 0.0}, "dt_s"), ({"dt_s": "1ms"}, "dt_s"),
                                       ({"dt_s": 1e-3, "pace": "fast"}, "pace")])
def test_a_bad_context_is_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        StageContext(**kw)


class _Finished:
    finished = False
    in_gap = True

    def failure(self):
        return None

    def take_events(self):
        return []

    def poll_control(self):
        return []

    def lsl_streams(self):
        return [{"name": "x", "type": "t", "direction": "in"}]


class _Reply(_Finished):
    def reply(self, msg, ok, reason=""):
        pass


class _Learner:
    needs_target = False

    def set_reward_source(self, source):
        pass


def test_optional_parts_are_read_once_by_protocol():
    src, sink = _Finished(), _Reply()
    parts = optional_parts(source=src, teacher=None, encoder=DeclaresNothing(), backend=object(),
                           learner=_Learner(), reward=sink, sinks=[sink, DeclaresNothing()], monitor=None)
    assert [r for r, _ in parts.may_fail] == ["source", "reward", "sinks.0"]
    assert [r for r, _ in parts.takes_events] == ["source", "reward", "sinks.0"]
    assert [r for r, _ in parts.lists_streams] == ["source", "reward", "sinks.0"]
    assert [(ch, reply is not None) for ch, reply in parts.control_inputs] == [(src, False), (sink, True)]
    assert parts.observe_always and not parts.opens_reward
    assert isinstance(src, Finite) and isinstance(src, ReportsGaps)
    assert not isinstance(DeclaresNothing(), Finite)
    none = optional_parts(source=DeclaresNothing(), teacher=None, encoder=DeclaresNothing(), backend=object(),
                          learner=None, reward=None, sinks=[], monitor=None)
    assert (none.may_fail, none.takes_events, none.lists_streams, none.control_inputs) == ([], [], [], [])
    assert not none.observe_always
