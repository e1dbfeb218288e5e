"""parse_speed: the one parser behind ``rtsnn replay --speed``, ``rtsnn events publish
--speed`` and the ``dvs_file`` source's ``speed``."""

from __future__ import annotations

import argparse
import math

import pytest

from rtsnn.stream.speed import SpeedError, parse_speed


@pytest.mark.parametrize("value, expected", [("max", math.inf), ("MAX", math.inf), ("1", 1.0), ("0.25", 0.25),
                                             (" 2.5 ", 2.5), (3, 3.0), (0.5, 0.5), ("1e-3", 1e-3)])
def test_good_speeds(value, expected):
    assert parse_speed(value) == expected


@pytest.mark.parametrize("value", ["0", 0, 0.0, "-1", -2.5, "nan", math.nan, "inf", "-inf", "Infinity", math.inf,
                                   "1e999", "fast", "", " ", None, [1.0]])
def test_bad_speeds_raise_a_value_error_naming_the_option(value):
    with pytest.raises(ValueError, match=r"^--speed must be a positive number or 'max', got "):
        parse_speed(value, what="--speed")


def test_infinity_points_at_max():
    with pytest.raises(SpeedError, match="write 'max'"):
        parse_speed("inf")


def test_as_an_argparse_type_the_message_is_kept():
    p = argparse.ArgumentParser(exit_on_error=False)
    p.add_argument("--speed", type=lambda t: parse_speed(t, what="--speed"), default=1.0)
    assert p.parse_args(["--speed", "max"]).speed == math.inf
    with pytest.raises(argparse.ArgumentError, match="--speed must be a positive number or 'max', got '0'"):
        p.parse_args(["--speed", "0"])


def test_every_caller_rejects_the_same_inputs(tmp_path, capsys):
    from rtsnn.cli import main

    (tmp_path / "ev.npy").write_bytes(b"")  # never read: the speed is checked first
    for bad in ("0", "-1", "nan", "inf", "fast", ""):
        with pytest.raises(SystemExit) as e:  # argparse type: usage error, exit 2
            main(["replay", str(tmp_path / "d.xdf"), "--speed", bad])
        assert e.value.code == 2
        assert f"--speed must be a positive number or 'max', got {bad!r}" in capsys.readouterr().err
        assert main(["events", "publish", str(tmp_path / "ev.npy"), "--speed", bad]) == 2
        assert f"--speed must be a positive number or 'max', got {bad!r}" in capsys.readouterr().err
