"""Event-camera files in the recording layer: plugin formats found through the entry-point
group ``rtsnn.recording_formats``, ``rtsnn recording info`` on the shared event files, and the
core (rtsnn.events, rtsnn.recording) importing no plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rtsnn.cli import main
from rtsnn.recording import describe, open_recording
from rtsnn.recording import plugins as rplugins
from rtsnn.recording.xdf_reader import Recording, StreamData
from rtsnn.recording.xdf_writer import StreamInfoData
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / ".." / "shared" / "data" / "events"
EVT3 = EVENTS / "prophesee_evt3_sample.raw"
AEDAT4 = EVENTS / "dvxplorer_sample.aedat4"
TRUTH = EVENTS / "prophesee_evt3_sample_events.npy"


def _need_data() -> None:
    if not EVENTS.is_dir():
        skip_or_fail("../shared/data/events is absent (a user's clone); CI has it")


def _info_json(capsys, *argv: str) -> dict:
    assert main(["recording", "info", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ---------------------------------------------------------------- the shared event files
@pytest.mark.parametrize("name,fmt,n,size", [("prophesee_evt3_sample.raw", "evt3", 219596, (1280, 720)),
                                             ("dvxplorer_sample.aedat4", "aedat4", 111954, (320, 240)),
                                             ("prophesee_evt3_sample_events.npy", "npy", 219596, (1280, 720))])
def test_recording_info_on_each_shared_event_file(capsys, name, fmt, n, size):
    _need_data()
    out = _info_json(capsys, str(EVENTS / name))
    assert out["format"] == fmt and out["repairs"] == []
    (st,) = out["streams"]
    assert (st["name"], st["type"], st["channel_format"], st["channel_labels"]) == ("events", "Events", "int16",
                                                                                    ["x", "y", "p"])
    assert st["channel_units"] == ["pixel", "pixel", "bool"] and st["nominal_srate_hz"] == 0.0
    assert st["n_samples"] == n and (st["width"], st["height"]) == size
    main(["recording", "info", str(EVENTS / name)])
    assert f"sensor: {size[0]} x {size[1]} pixels" in capsys.readouterr().out


def test_event_streams_hold_exactly_the_decoded_events():
    """The Recording's x, y, p rows and float64 second timestamps give back every event exactly:
    the spec decoding of the EVT3 sample, the ground-truth array, and AEDAT4's Unix-epoch times."""
    _need_data()
    from rtsnn.events.publisher import events_of_stream
    from rtsnn_dvs.files import read_events

    for path in (EVT3, AEDAT4, TRUTH):
        st = open_recording(path).streams[0]
        ours = events_of_stream(st)
        np.testing.assert_array_equal(ours, read_events(path).events)
    truth = np.load(TRUTH)
    np.testing.assert_array_equal(events_of_stream(open_recording(TRUTH).streams[0]), truth)


def test_event_file_bad_input_is_one_line(tmp_path, capsys):
    _need_data()
    cut = tmp_path / "cut.raw"
    cut.write_bytes(EVT3.read_bytes()[:40])  # inside the header
    assert main(["recording", "info", str(cut)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cut.raw" in err and "header" in err
    blob = tmp_path / "blob.raw"
    blob.write_bytes(bytes(range(256)))  # no Prophesee header
    assert main(["recording", "info", str(blob)]) == 2
    assert "the content is not evt2 or evt3, the formats that take '.raw' files" in capsys.readouterr().err
    assert main(["recording", "info", str(EVT3), "--rate-hz", "1000"]) == 2
    assert "irregular" in capsys.readouterr().err
    assert main(["recording", "info", str(EVT3), "--group", "a=x"]) == 2
    assert "apply to npz, CSV and MATLAB" in capsys.readouterr().err


def test_truncated_event_file_reports_its_repairs(tmp_path):
    _need_data()
    data = EVT3.read_bytes()
    cut = tmp_path / "cut.raw"
    cut.write_bytes(data[:len(data) // 2 | 1])  # a partial 16-bit word at the end
    rec = open_recording(cut)
    kinds = {r.kind: r.detail for r in rec.repairs}
    assert kinds["trailing_bytes_dropped"] == "1" and "partial EVT3 load" in kinds["partial_load"]
    assert 0 < rec.streams[0].n_samples < 219596


# ---------------------------------------------------------------- entry-point discovery
class FakeFormat:
    """A made-up format: text ``FAKE n`` -> one irregular stream of n samples."""

    suffixes = (".fake",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"FAKE ")

    def read(self, path: str) -> Recording:
        text = Path(path).read_text()
        if not text.startswith("FAKE "):
            raise ValueError(f"{path}: not a FAKE file")
        n = int(text.split()[1])
        info = StreamInfoData(name="fake", type="Fake", channel_count=1, nominal_srate_hz=0.0,
                              channel_format="float32", channel_labels=["v"])
        return Recording(path=path, streams=[StreamData(0, info, np.arange(n) * 0.5, np.ones((n, 1), np.float32))])


class _EP:
    """Stands in for an importlib.metadata EntryPoint."""

    def __init__(self, name: str, target):
        self.name, self.value, self._target = name, f"tests:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def fake_formats(monkeypatch):
    eps = [_EP("fakefmt", FakeFormat), _EP("xdf", FakeFormat)]  # a plugin cannot take a built-in name
    monkeypatch.setattr(rplugins, "entry_points", lambda group: eps if group == "rtsnn.recording_formats" else [])
    return eps


def test_a_registered_format_is_found_by_suffix_content_and_name(tmp_path, capsys, fake_formats):
    assert list(rplugins.installed()) == ["fakefmt"]
    by_suffix = tmp_path / "a.fake"
    by_suffix.write_text("FAKE 4")
    out = _info_json(capsys, str(by_suffix))
    assert out["format"] == "fakefmt" and out["streams"][0]["n_samples"] == 4
    no_suffix = tmp_path / "b"
    no_suffix.write_text("FAKE 3\n")
    assert [d["n_samples"] for d in describe(open_recording(no_suffix))] == [3]
    named = tmp_path / "c.bin"
    named.write_text("FAKE 2")
    assert open_recording(named, fmt="fakefmt").streams[0].n_samples == 2
    # the suffix names the format, the content is not it: one line naming both
    bad = tmp_path / "d.fake"
    bad.write_text("nope")
    assert main(["recording", "info", str(bad)]) == 2
    assert "the content is not fakefmt, the formats that take '.fake' files" in capsys.readouterr().err
    # a named format's reader checks the content itself
    assert main(["recording", "info", str(bad), "--format", "fakefmt"]) == 2
    assert "not a FAKE file" in capsys.readouterr().err
    # a built-in suffix is never handed to a plugin
    csv = tmp_path / "e.csv"
    csv.write_text("time_s,v\n0,1\n1,2\n")
    assert _info_json(capsys, str(csv))["format"] == "csv"


def test_unknown_format_lists_plugin_formats(tmp_path, capsys, fake_formats):
    odd = tmp_path / "x.bin"
    odd.write_bytes(b"\x00\x01\x02 nothing known")
    assert main(["recording", "info", str(odd)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"supported: xdf, edf, bdf, npz, csv, mat, fakefmt", err)
    assert main(["recording", "info", str(odd), "--format", "nosuch"]) == 2
    assert "unknown format 'nosuch'; choose one of" in capsys.readouterr().err


def test_a_broken_plugin_format_is_one_line(tmp_path, capsys, monkeypatch):
    eps = [_EP("broken", ImportError("No module named 'rtsnn_gone'"))]
    monkeypatch.setattr(rplugins, "entry_points", lambda group: eps)
    odd = tmp_path / "x.bin"
    odd.write_bytes(b"\x00\x01 nothing")
    assert main(["recording", "info", str(odd)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "plugin 'broken'" in err and "rtsnn_gone" in err


def test_rtsnn_dvs_registers_its_event_formats():
    names = set(rplugins.installed())
    if not {"evt2", "evt3", "dat", "aedat4", "npy"} <= names:
        skip_or_fail(f"rtsnn-dvs's recording formats are not installed (pip install -e plugins/rtsnn-dvs); "
                     f"found {sorted(names)}")
    from rtsnn.protocols import RecordingFormat

    for name in ("evt2", "evt3", "dat", "aedat4", "npy"):
        assert isinstance(rplugins.load(name), RecordingFormat)


# ---------------------------------------------------------------- the core imports no plugin
def test_core_source_never_imports_rtsnn_dvs():
    pattern = re.compile(r"^\s*(import|from)\s+rtsnn_dvs\b", re.MULTILINE)
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "rtsnn").rglob("*.py") if pattern.search(p.read_text())]
    assert hits == []


def test_events_and_recording_import_and_run_with_rtsnn_dvs_hidden(tmp_path):
    """With rtsnn_dvs unimportable, rtsnn.events.* and rtsnn.recording.* still import, a .npy
    event file is still read by the publisher's loader, and a .raw file is one line naming the plugin."""
    ev = np.zeros(5, [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    ev["t"] = np.arange(5) * 100
    np.save(tmp_path / "ev.npy", ev)
    raw = tmp_path / "ev.raw"
    raw.write_bytes(b"% evt 3.0\n" + bytes(64))
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, pkgutil, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "rtsnn_dvs":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Hide())
        import rtsnn.events, rtsnn.recording
        for pkg in (rtsnn.events, rtsnn.recording):
            for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(info.name)
        from rtsnn.events.publisher import load_events
        assert len(load_events({str(tmp_path / 'ev.npy')!r}).events) == 5
        assert "rtsnn_dvs" not in sys.modules
        from rtsnn.cli import main
        sys.exit(main(["events", "info", {str(raw)!r}]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "ev.raw" in out.stderr and "rtsnn_dvs" in out.stderr
