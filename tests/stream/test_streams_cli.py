"""``rtsnn streams``: lists real LSL outlets (table and strict JSON), says so when none match."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid

import pylsl
import pytest

from rtsnn.cli import main

pytestmark = pytest.mark.lsl


def _unique(tag: str) -> str:
    return f"rtsnn-test-streams-{tag}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def outlet():
    """A real LSL outlet: 5 float32 channels at 250 Hz, type EEG, with a unique name and source_id."""
    name = _unique("eeg")
    info = pylsl.StreamInfo(name, "EEG", 5, 250.0, "float32", f"sid-{name}")
    out = pylsl.StreamOutlet(info)
    yield name
    del out


def _ours(rows, name):
    mine = [r for r in rows if r["name"] == name]
    assert len(mine) == 1, f"{name} not listed exactly once in {rows}"
    return mine[0]


def test_json_lists_the_outlet_with_its_fields(outlet, capsys):
    assert main(["streams", "--wait", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, "--json prints exactly one line"
    rows = json.loads(out[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert isinstance(rows, list)
    row = _ours(rows, outlet)
    host = row.pop("host")
    assert row == {"name": outlet, "type": "EEG", "n_channels": 5, "nominal_srate_hz": 250.0,
                   "channel_format": "float32", "source_id": f"sid-{outlet}"}
    assert host == socket.gethostname().split(".")[0] or host == socket.gethostname()


def test_table_has_the_outlet_in_aligned_columns(outlet, capsys):
    assert main(["streams", "--wait", "2", "--name", outlet]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert len(lines) == 2, lines  # header + our one stream (the name filter is exact here)
    header, row = lines
    assert header.split() == ["NAME", "TYPE", "CHANNELS", "RATE_HZ", "FORMAT", "SOURCE_ID", "HOST"]
    cols = row.split()
    assert cols[:6] == [outlet, "EEG", "5", "250", "float32", f"sid-{outlet}"]
    # aligned: every column starts (left-aligned) or ends (right-aligned) where its header does
    assert row.index("EEG") == header.index("TYPE")
    assert row.index(" 5 ") + 2 == header.index("CHANNELS") + len("CHANNELS")
    assert row.index("float32") == header.index("FORMAT")


def test_name_glob_and_type_filter(outlet, capsys):
    prefix = outlet.rsplit("-", 1)[0]
    assert main(["streams", "--wait", "2", "--json", "--name", prefix + "-*", "--type", "EEG"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [outlet]
    assert main(["streams", "--wait", "1", "--json", "--name", outlet, "--type", "Markers"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_irregular_rate_is_shown_as_such(capsys):
    name = _unique("markers")
    out = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, "string", ""))
    try:
        assert main(["streams", "--wait", "2", "--name", name]) == 0
        row = capsys.readouterr().out.splitlines()[1].split()
        assert row[:6] == [name, "Markers", "1", "irregular", "string", "-"]
        assert main(["streams", "--wait", "2", "--name", name, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["nominal_srate_hz"] == 0.0
    finally:
        del out


def test_none_found_says_so_and_exits_0(capsys):
    absent = _unique("absent")
    assert main(["streams", "--wait", "0.5", "--name", absent]) == 0
    assert capsys.readouterr().out.strip() == f"no LSL streams matching name {absent!r} found within 0.5 s"
    assert main(["streams", "--wait", "0.5", "--name", absent, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_none_found_without_filter_message(tmp_path):
    """In a fresh process whose LSL discovery uses ports no other outlet on the machine uses
    (a private lsl_api.cfg), nothing answers: the unfiltered message, exit 0."""
    port = 30000 + uuid.uuid4().int % 20000
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(f"[ports]\nMulticastPort = {port}\nBasePort = {port + 1}\nPortRange = 2\n")
    proc = subprocess.run([sys.executable, "-m", "rtsnn.cli", "streams", "--wait", "0.3"], capture_output=True,
                          text=True, env={**os.environ, "LSLAPICFG": str(cfg)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no LSL streams found within 0.3 s"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("wait", ["0", "-1", "nan", "inf"])
def test_bad_wait_is_refused_with_exit_2(wait, capsys):
    assert main(["streams", "--wait", wait]) == 2
    err = capsys.readouterr().err
    assert "--wait must be a positive number of seconds" in err and "Traceback" not in err


def test_record_prints_strict_json_and_a_normalised_path(outlet, tmp_path, capsys, monkeypatch):
    """`rtsnn record` from a real outlet: the summary is one strict JSON line and the file is
    printed normalised, relative as the user gave it."""
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["record", "--streams", outlet, "--out", "./.././rec.xdf", "--duration", "0.3", "--json"]) == 0
    text = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert summary["path"] == "../rec.xdf"
    assert (tmp_path / "rec.xdf").is_file()
    assert main(["record", "--streams", outlet, "--out", "../sub/../rec2.xdf", "--duration", "0.3"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("recorded {") and " to ../rec2.xdf (" in line and (tmp_path / "rec2.xdf").is_file()
