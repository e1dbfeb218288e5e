import pytest

from rtsnn import plugins
from rtsnn.config import ConfigError
from rtsnn.protocols import GROUPS


def test_builtins_registered_in_every_group():
    table = plugins.describe_all()
    assert set(table) == set(GROUPS)
    names = {g: {r["name"] for r in rows} for g, rows in table.items()}
    assert "lsl" in names["rtsnn.sources"] and "lsl" in names["rtsnn.sinks"]
    assert {"passthrough", "threshold_crossing", "poisson_rate", "delta", "spike_bin"} <= names["rtsnn.encoders"]
    assert "numba_cpu" in names["rtsnn.backends"] and "ridge_readout" in names["rtsnn.learners"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_registered_plugin_loads(group):
    for name in plugins.available(group):
        obj = plugins.load(group, name)
        # stages are classes built from config options; backend reports are functions
        assert callable(obj) if group == "rtsnn.backend_reports" else isinstance(obj, type)


def test_unknown_plugin_lists_installed():
    with pytest.raises(ConfigError, match="no rtsnn.encoders plugin named 'nope'.*passthrough"):
        plugins.load("rtsnn.encoders", "nope")


def test_unknown_and_missing_options_named():
    with pytest.raises(ConfigError, match=r"encoder\.options: unknown option\(s\) bogus"):
        plugins.build("rtsnn.encoders", "passthrough", {"n_channels": 2, "bogus": 1}, "encoder")
    with pytest.raises(ConfigError, match=r"encoder\.options: missing required option\(s\) n_channels"):
        plugins.build("rtsnn.encoders", "passthrough", {}, "encoder")


def test_bad_group_refused():
    with pytest.raises(ValueError, match="unknown plugin group"):
        plugins.available("rtsnn.nothing")
