"""The live path needs only the core dependencies: with every optional extra hidden, each
module of the package either imports or fails with a MissingExtraError that names the extra,
and the CLI still starts (a fresh machine's ``make demo`` has none of the extras)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from rtsnn.extras import EXTRA_OF, MissingExtraError, install_hint, require

# what a fresh machine lacks after `pip install rtsnn` (the core dependencies only)
HIDDEN = sorted(set(EXTRA_OF) | {"paho", "xylosim", "expelliarmus", "dv_processing", "lz4", "brainflow",
                                 "scipy", "sklearn", "psutil", "pandas", "rtsnn_xylo", "rtsnn_dvs",
                                 "rtsnn_brainflow"})

# the modules `rtsnn demo` / `rtsnn run` go through; each must import with the extras hidden
LIVE_PATH = ["rtsnn.cli", "rtsnn.config", "rtsnn.plugins", "rtsnn.protocols", "rtsnn.control_messages",
             "rtsnn.runtime.session", "rtsnn.runtime.control", "rtsnn.clock", "rtsnn.runtime.metrics",
             "rtsnn.stream.lsl_source", "rtsnn.stream.lsl_sink", "rtsnn.stream.synthetic",
             "rtsnn.stream.replay", "rtsnn.stream.recorder", "rtsnn.encode.binning", "rtsnn.encode.threshold",
             "rtsnn.encode.rate", "rtsnn.encode.delta", "rtsnn.snn", "rtsnn.backends.numba_cpu",
             "rtsnn.learn.online.ridge_readout", "rtsnn.learn.online.eprop", "rtsnn.learn.online.adaptation",
             "rtsnn.runtime.monitor", "rtsnn.stream.mqtt_source", "rtsnn.stream.mqtt_sink"]

PROBE = textwrap.dedent("""
    import importlib, importlib.abc, json, pkgutil, sys
    HIDDEN = set(json.loads(sys.argv[1]))

    class HideExtras(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, HideExtras())
    import rtsnn
    result = {}
    for info in pkgutil.walk_packages(rtsnn.__path__, "rtsnn."):
        try:
            importlib.import_module(info.name)
            result[info.name] = ["ok", ""]
        except BaseException as err:  # noqa: BLE001 - every outcome is reported
            result[info.name] = [type(err).__name__, str(err)]
    from rtsnn.cli import main
    try:
        rc = main(["--help"])
    except SystemExit as e:
        rc = e.code
    result["<rtsnn --help>"] = ["ok" if rc in (0, None) else f"exit {rc}", ""]
    print(json.dumps(result))
""")


def _probe() -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HIDDEN)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_module_loads_or_names_its_extra_with_extras_hidden():
    result = _probe()
    assert len(result) > 50  # the walk found the package's modules
    for name in LIVE_PATH + ["<rtsnn --help>"]:
        assert result[name][0] == "ok", f"{name} failed with the extras hidden: {result[name]}"
    failed = {n: r for n, r in result.items() if r[0] != "ok"}
    for name, (kind, text) in failed.items():
        assert kind == "MissingExtraError" and "pip install 'rtsnn[" in text, \
            f"{name} failed without an install hint: {kind}: {text}"
    # the dashboard window is the one module that needs its extra at import time
    assert failed.get("rtsnn.viz.dashboard", [""])[0] == "MissingExtraError"
    assert "rtsnn[dashboard]" in failed["rtsnn.viz.dashboard"][1]


def test_require_names_the_extra_and_the_feature():
    try:
        require("rtsnn_no_such_package_for_test", "a test feature")
    except MissingExtraError as err:
        assert str(err).startswith("a test feature: needs the Python package 'rtsnn_no_such_package_for_test'")
        assert "pip install rtsnn_no_such_package_for_test" in str(err)
    else:  # pragma: no cover
        raise AssertionError("require did not raise for a missing package")
    assert install_hint("msgpack") == "pip install 'rtsnn[mqtt]'"
    assert install_hint("pyqtgraph.Qt") == "pip install 'rtsnn[dashboard]'"
    assert require("json", "json").dumps([1]) == "[1]"


def test_missing_extra_reaches_the_cli_as_one_line_with_exit_2():
    """A feature whose extra is missing: the install hint on stderr, exit 2, no traceback."""
    code = textwrap.dedent("""
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("pyqtgraph", "PySide6"):
                    raise ModuleNotFoundError(name, name=name)
        sys.meta_path.insert(0, Hide())
        from rtsnn.cli import main
        sys.exit(main(["dashboard", "--screenshot", "/tmp/never.png", "--wait", "0.1"]))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "pip install 'rtsnn[dashboard]'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_an_mqtt_sink_without_the_extra_stops_the_run_before_it_starts(tmp_path):
    """Without aiomqtt the MQTT sink must refuse to be built (the session then never starts),
    not start a loop thread that dies on import and leaves a sink that publishes nothing."""
    cfg = tmp_path / "mqtt.yaml"
    cfg.write_text(textwrap.dedent(f"""
        session: {{name: nomqtt, out_dir: {tmp_path / "s"}, duration_s: 1, monitor: false}}
        source: {{kind: lsl, options: {{name: nowhere, n_channels: 2}}}}
        encoder: {{kind: passthrough, options: {{n_channels: 2}}}}
        model: {{random: {{n_rec: 8}}}}
        sinks: [{{kind: mqtt, options: {{session: nomqtt}}}}]
    """))
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("aiomqtt", "msgpack"):
                    raise ModuleNotFoundError(name, name=name)
        sys.meta_path.insert(0, Hide())
        from rtsnn.cli import main
        sys.exit(main({[a for a in ("config", "check", str(cfg))]!r}) * 10 + main(["run", {str(cfg)!r}]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 22, out.stderr  # config check: 2, run: 2
    assert "Traceback" not in out.stderr
    assert out.stderr.count("pip install 'rtsnn[mqtt]'") == 2
    assert not (tmp_path / "s").exists()  # no session folder was started
