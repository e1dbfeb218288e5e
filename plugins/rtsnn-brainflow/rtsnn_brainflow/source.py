"""A BrainFlow board as an rtsnn Source.

BrainFlow (https://brainflow.org) drives many biosensing boards behind one API: a board is
chosen by its integer id (``-1`` the synthetic board, ``0`` OpenBCI Cyton, ``38`` Muse 2, ...)
and reached through the connection fields of ``BrainFlowInputParams`` (serial port, MAC or IP
address, serial number, file). The board streams into BrainFlow's own ring buffer from a
native thread; ``pull`` moves what arrived since the last tick out of it without blocking.

Rows and units. A board's data is a (rows, samples) float64 table; ``channels`` selects the
rows delivered, by type (``'eeg'``, ``'emg'``, ``'ecg'``, ``'eog'``, ``'accel'``, ...) or as a
list of row indices. BrainFlow scales EEG/EMG/ECG/EOG to microvolts.

Timestamps. BrainFlow stamps each sample with the host's wall clock (Unix seconds) when it
was read; ``pull`` maps them onto the LSL clock with ``t_lsl = t_unix + (local_clock() -
time.time())``, the offset measured at each pull, so they are comparable with the session's
other timestamps. Then rtsnn's repairs apply (:func:`rtsnn.stream.repair.repair_chunk`):
non-finite values by ``nan_policy``, samples older than ``max_backlog_s`` dropped (a session
that starts late does not decode a stale backlog), timestamps that go backwards clamped; all
counted in ``stats()``.

Failures. A board that cannot be opened raises ``ConnectionError`` naming the board and the
connection fields; wrap the adapter in ``rtsnn.stream.supervise.SupervisedSource`` (source
kind ``supervised``) to retry with backoff instead.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pylsl
from brainflow.board_shim import BoardShim, BrainFlowError, BrainFlowInputParams

from rtsnn.stream.repair import (DROPPED_BACKLOG, DROPPED_NONFINITE, POLICIES, REPAIRED, SAMPLES,
                                 TS_BACKWARDS, TS_JUMPS, new_counters, repair_chunk)

CHANNEL_TYPES = ("eeg", "emg", "ecg", "eog", "eda", "ppg", "accel", "gyro", "temperature", "resistance")
CONNECTION_FIELDS = ("serial_port", "mac_address", "ip_address", "ip_address_aux", "ip_address_anc", "ip_port",
                     "ip_port_aux", "ip_port_anc", "ip_protocol", "serial_number", "other_info", "file",
                     "file_aux", "file_anc", "master_board", "timeout")


def board_rows(board_id: int, channels: str | list[int]) -> tuple[list[int], int, float]:
    """(selected rows, timestamp row, sampling rate Hz) of a board; ValueError for bad input."""
    try:
        descr = BoardShim.get_board_descr(board_id)
    except BrainFlowError as err:
        raise ValueError(f"board_id {board_id!r} is not a BrainFlow board id ({err})") from None
    n_rows = int(descr["num_rows"])
    if isinstance(channels, str):
        if channels not in CHANNEL_TYPES:
            raise ValueError(f"channels must be one of {CHANNEL_TYPES} or a list of row indices, got {channels!r}")
        rows = list(descr.get(f"{channels}_channels", []))
        if not rows:
            raise ValueError(f"board {board_id} ({descr.get('name')}) has no {channels} channels")
    else:
        rows = list(channels)
        if not rows or any(isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < n_rows for r in rows):
            raise ValueError(f"channels: row indices must be integers in [0, {n_rows}) for board {board_id}, "
                             f"got {channels!r}")
    return rows, int(descr["timestamp_channel"]), float(descr["sampling_rate"])


class BrainFlowSource:
    """Samples of one BrainFlow board (see the module docstring).

    Connection options are BrainFlowInputParams' fields (``serial_port``, ``mac_address``,
    ``ip_address``, ``ip_port``, ``serial_number``, ``other_info``, ``file``, ``timeout``...),
    passed as keyword arguments; unknown ones are refused.
    """

    def __init__(self, board_id: int = -1, channels: str | list[int] = "eeg", *, max_samples: int = 1024,
                 ring_samples: int = 45000, nan_policy: str = "hold", max_backlog_s: float | None = 1.0,
                 max_jump_s: float = 1.0, log_level: str = "off", **connection: Any):
        if isinstance(board_id, bool) or not isinstance(board_id, int):
            raise ValueError(f"board_id must be an integer BrainFlow board id (-1: synthetic), got {board_id!r}")
        unknown = sorted(set(connection) - set(CONNECTION_FIELDS))
        if unknown:
            raise ValueError(f"unknown BrainFlow connection option(s) {', '.join(unknown)}; expected some of "
                             f"{', '.join(CONNECTION_FIELDS)}")
        if nan_policy not in POLICIES:
            raise ValueError(f"nan_policy must be one of {tuple(POLICIES)}, got {nan_policy!r}")
        for name, v in (("max_samples", max_samples), ("ring_samples", ring_samples)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if max_backlog_s is not None and not max_backlog_s > 0:
            raise ValueError(f"max_backlog_s must be > 0 or None, got {max_backlog_s!r}")
        if log_level not in ("off", "error", "info", "trace"):
            raise ValueError(f"log_level must be off|error|info|trace, got {log_level!r}")
        self.board_id = board_id
        self.rows, self.ts_row, self.srate_hz = board_rows(board_id, channels)
        self.n_channels = len(self.rows)
        self.connection = dict(connection)
        self.max_samples = max_samples
        self.ring_samples = ring_samples
        self.nan_policy = nan_policy
        self._policy = POLICIES[nan_policy]
        self.max_backlog_s = float("inf") if max_backlog_s is None else float(max_backlog_s)
        self.max_jump_s = float(max_jump_s)
        self.log_level = log_level
        self.board: BoardShim | None = None
        self._raw = np.zeros((max_samples, self.n_channels), np.float32)
        self._raw_ts = np.zeros(max_samples, np.float64)
        self._last_good = np.zeros(self.n_channels, np.float32)
        self._prev_ts = np.full(1, np.nan)
        self.counters = new_counters()
        self.pulls = 0

    def __repr__(self) -> str:
        return f"BrainFlowSource(board_id={self.board_id}, n_channels={self.n_channels}, srate_hz={self.srate_hz})"

    def open(self) -> None:
        if self.board is not None:
            raise RuntimeError("BrainFlowSource.open called twice")
        levels = {"off": 6, "error": 4, "info": 2, "trace": 0}
        BoardShim.set_log_level(levels[self.log_level])
        params = BrainFlowInputParams()
        for k, v in self.connection.items():
            setattr(params, k, v)
        board = BoardShim(self.board_id, params)
        try:
            board.prepare_session()
            board.start_stream(self.ring_samples)
        except BrainFlowError as err:
            try:
                board.release_session()
            except BrainFlowError:
                pass
            fields = ", ".join(f"{k}={v!r}" for k, v in self.connection.items()) or "no connection options"
            raise ConnectionError(f"BrainFlow board {self.board_id} ({fields}) could not be opened: {err}") from None
        self.board = board

    def pull(self, samples_out: np.ndarray, timestamps_out: np.ndarray) -> int:
        board = self.board
        self.pulls += 1
        count = board.get_board_data_count()
        if count <= 0:
            return 0
        n = min(count, self.max_samples, samples_out.shape[0])
        data = board.get_board_data(n)  # (rows, n) float64; removes them from BrainFlow's ring
        n = data.shape[1]
        self._raw[:n] = data[self.rows].T
        self._raw_ts[:n] = data[self.ts_row]
        now = pylsl.local_clock()
        offset_s = now - time.time()
        return int(repair_chunk(self._raw, self._raw_ts, n, offset_s, now, self.max_backlog_s, self.max_jump_s,
                                self._policy, self._last_good, self._prev_ts, samples_out, timestamps_out,
                                self.counters))

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {"kind": "brainflow", "board_id": self.board_id, "srate_hz": self.srate_hz, "pulls": self.pulls,
                "samples": int(c[SAMPLES]), "repaired_values": int(c[REPAIRED]),
                "dropped_nonfinite": int(c[DROPPED_NONFINITE]), "dropped_samples": int(c[DROPPED_BACKLOG]),
                "ts_backwards": int(c[TS_BACKWARDS]), "ts_jumps": int(c[TS_JUMPS]),
                "streaming": self.board is not None}

    def close(self) -> None:
        board, self.board = self.board, None
        if board is None:
            return
        try:
            board.stop_stream()
        except BrainFlowError:
            pass
        try:
            board.release_session()
        except BrainFlowError:
            pass
