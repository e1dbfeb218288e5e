"""The Python API for scripts and notebooks: load a config, run a session in the foreground or
in the background, read its outputs back.

    import rtsnn
    cfg = rtsnn.load_config("lab.yaml")          # or a dict, same checks and messages
    s = rtsnn.Session(cfg).start()               # returns at once; the session runs in a thread
    s.status()                                   # {"running": True, "ticks": ..., "r2": ...}
    summary = s.stop()                           # stop, wait, the summary (also in summary.json)
    out = rtsnn.load_outputs(summary["folder"])  # {"tick": array, "y_vx": array, ..., "units": {...}}

:class:`Session` is a thin wrapper over :class:`rtsnn.runtime.session.Session`, the class
the command line runs; docs/python_api.md has a worked example.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rtsnn.config import ConfigError, SessionConfig, parse_config
from rtsnn.config import load_config as _load_config_file
from rtsnn.runtime.outputs_file import read_outputs


def load_config(config: str | Path | dict[str, Any] | SessionConfig) -> SessionConfig:
    """The validated :class:`~rtsnn.config.SessionConfig` from a YAML file's path or a dict
    (a SessionConfig is returned as is). A bad key or value raises ConfigError naming it, in
    the same words as for a file (``<dict>: session.dt_s: ...``)."""
    if isinstance(config, SessionConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config, "<dict>")
    if isinstance(config, (str, Path)):
        return _load_config_file(config)
    raise ConfigError(f"load_config takes a path, a dict or a SessionConfig, got {type(config).__name__}")


def _origin(config: Any) -> str:
    return str(config) if isinstance(config, (str, Path)) else "<dict>" if isinstance(config, dict) else "<config>"


class Session:
    """One closed-loop session, built from ``config`` (a SessionConfig, a dict or a YAML path)
    when constructed, so a bad config or plugin option raises here. It runs once:

    ``run()`` blocks until the duration ends (or Ctrl-C) and returns the summary;
    ``start()`` runs it in a background thread and returns at once (a notebook cell stays
    free); ``status()`` is a snapshot while it runs; ``stop()`` asks it to end, waits, and
    returns the summary (an error the session ended with is raised there).
    """

    def __init__(self, config: str | Path | dict[str, Any] | SessionConfig):
        from rtsnn.runtime.session import Session as _RuntimeSession

        self.config = load_config(config)
        self._session = _RuntimeSession(self.config, _origin(config))
        self._thread: threading.Thread | None = None
        self._summary: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._used = False

    @property
    def runtime(self) -> Any:
        """The underlying :class:`rtsnn.runtime.session.Session` (not part of the stable API)."""
        return self._session

    @property
    def folder(self) -> Path | None:
        """The session folder (None until the run has created it)."""
        return self._session.folder

    @property
    def failed(self) -> str | None:
        """Why the run failed, in one line (a stage's ``failure()`` such as an MQTT sink whose
        login the broker refused, or the compute / I/O thread's error), else None. A run that
        failed this way still returns its summary (``stopped_by`` = ``"failed: ..."``, the
        same reason in the folder's ``FAILED`` file); check this, as ``rtsnn run`` does for
        its exit status."""
        return self._session.failed

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("this Session has already run; make a new rtsnn.Session for another run")
        self._used = True

    def run(self) -> dict[str, Any]:
        """Run in the calling thread until the configured duration (or Ctrl-C); the summary."""
        self._claim()
        self._summary = self._session.run()
        return self._summary

    def start(self) -> "Session":
        """Run in a background thread; returns at once (``self``, for chaining)."""
        self._claim()

        def target() -> None:
            try:
                self._summary = self._session.run()
            except BaseException as err:  # noqa: BLE001 - handed to stop() / status()
                self._error = err

        self._thread = threading.Thread(target=target, name="rtsnn-session", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = 30.0) -> dict[str, Any]:
        """Ask the session to stop, wait for it (at most ``timeout_s``), return its summary.
        A session that already ended (its duration) just returns the summary."""
        if not self._used:
            raise RuntimeError("this Session was never started; call start() or run()")
        self._session.stop("stop()")
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise TimeoutError(f"the session did not stop within {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        if self._summary is None:
            raise RuntimeError("the session has not finished (run() is still running in another thread)")
        return self._summary

    def wait(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """Wait for a started session to end by itself; its summary, or None on timeout."""
        if self._thread is None:
            raise RuntimeError("wait() is for a session started with start()")
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._summary

    def status(self) -> dict[str, Any]:
        """A snapshot: ``running``, ``ticks`` and ``deadline_misses`` so far (timed ticks, after
        warm-up), ``r2`` so far (None before calibration), ``e2e_p99_us`` so far, ``source``
        health, ``folder``, ``failed`` (see :attr:`failed`), ``error`` (None, or the error the
        session ended with)."""
        st = self._session.status()
        if st["error"] is None and self._error is not None:
            st["error"] = f"{type(self._error).__name__}: {self._error}"
        return st

    def __repr__(self) -> str:
        st = self._session.status()
        state = "running" if st["running"] else "failed" if st["error"] or self._error or st["failed"] else \
            "finished" if self._summary is not None else "not started"
        return f"<rtsnn.Session {self.config.session.name!r} {state}, {st['ticks']} ticks, folder {st['folder']}>"


def load_outputs(session_dir: str | Path) -> dict[str, Any]:
    """Every tick's decoded and target outputs of a session folder, as numpy arrays keyed by
    column name (``tick``, ``t_source_s``, ``t_emit_s``, ``y_<label>``..., ``target_<label>``...,
    each float64 of length = rows), plus ``"units"``: {column: unit} (None where a folder
    predates units). Read from ``outputs.f64`` and ``outputs.json`` by
    :func:`rtsnn.runtime.outputs_file.read_outputs`; no pandas. A trailing partial row (a crash
    mid-write) is left out. Raises ValueError for a folder that is not a session."""
    rec = read_outputs(session_dir)
    out: dict[str, Any] = {name: rec.rows[:, i].copy() for i, name in enumerate(rec.columns)}
    out["units"] = dict(rec.units)
    return out
