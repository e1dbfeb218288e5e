from pathlib import Path

import pytest

from rtsnn.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


BASE = """
source: {kind: lsl, options: {name: x, n_channels: 4}}
encoder: {kind: passthrough, options: {n_channels: 4}}
"""


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    assert cfg.session.dt_s == 1e-3 and cfg.backend.kind == "numba_cpu"


def test_wrong_value_names_file_key_and_expectation(tmp_path):
    p = _write(tmp_path, BASE + "session: {dt_s: -0.001}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "session.dt_s" in msg and "greater than 0" in msg and "-0.001" in msg


def test_unknown_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"session\.dt_ms: unknown key"):
        load_config(_write(tmp_path, BASE + "session: {dt_ms: 1}\n"))


def test_missing_section_named(tmp_path):
    with pytest.raises(ConfigError, match=r"encoder: Field required"):
        load_config(_write(tmp_path, "source: {kind: lsl}\n"))


def test_budget_larger_than_tick_refused(tmp_path):
    with pytest.raises(ConfigError, match="budget_us"):
        load_config(_write(tmp_path, BASE + "session: {budget_us: 5000}\n"))


@pytest.mark.parametrize("phase", ["1000", "2500", "-5", "999.9996"])  # the last rounds to 1 ms in ns
def test_tick_phase_outside_the_tick_refused(tmp_path, phase):
    with pytest.raises(ConfigError, match="tick_phase_us"):
        load_config(_write(tmp_path, BASE + "session: {tick_phase_us: " + phase + "}\n"))


def test_tick_phase_inside_the_tick_accepted(tmp_path):
    cfg = load_config(_write(tmp_path, BASE + "session: {tick_phase_us: 300}\n"))
    assert cfg.session.tick_phase_us == 300.0


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "source: [unclosed\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    # pretrain_*.yaml are `rtsnn pretrain` configs (their own schema); the rest are sessions
    if path.name.startswith("pretrain_"):
        from rtsnn.learn.offline.pretrain import load_pretrain_config
        load_pretrain_config(path)
    else:
        load_config(path)


def test_a_pretrain_config_is_not_a_session_config():
    with pytest.raises(ConfigError, match="source: Field required"):
        load_config(REPO / "configs/pretrain_synthetic.yaml")


def test_shipped_demo_config_is_the_embedded_one():
    assert (REPO / "configs/demo.yaml").read_text() == (REPO / "rtsnn/configs/demo.yaml").read_text()


# ------------------------------------------------------------------ limits (the hardening issue)
@pytest.mark.parametrize("patch, key, words", [
    ({"model": {"random": {"n_rec": 10_000_000}}}, "model.random.n_rec",
     "n_rec 10000000 neurons is above the limit 4096 neurons (set the environment variable RTSNN_MAX_NEURONS"),
    ({"model": {"random": {"n_out": 5000}}}, "model.random.n_out", "RTSNN_MAX_OUTPUTS"),
    ({"session": {"dt_s": 1e-6, "budget_us": 0.5}}, "session.dt_s", "below the shortest tick 0.0001 s"),
    ({"synthetic_user": {"n_neurons": 100_000}}, "synthetic_user.n_neurons", "RTSNN_MAX_CHANNELS"),
])
def test_sizes_and_the_tick_have_limits_that_name_how_to_raise_them(patch, key, words):
    data = {"source": {"kind": "lsl", "options": {"name": "x", "n_channels": 4}},
            "encoder": {"kind": "binning", "options": {"n_channels": 4}}, **patch}
    with pytest.raises(ConfigError) as err:
        parse_config(data, "c.yaml")
    line = str(err.value)
    assert line.startswith(f"c.yaml: {key}: ") and words in line and "Value error" not in line
