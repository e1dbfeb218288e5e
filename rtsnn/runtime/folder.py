"""The session folder's housekeeping (docs/session_folder.md): ``<out_dir>/<name>-<UTC time>``,
created 0700, every file in it written 0600 (:func:`make_session_folder`, :func:`atomic_write`,
:func:`restrict_to_owner`); a run that failed leaves a ``FAILED`` file with the reason
(:func:`mark_failed`)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import stat
from pathlib import Path

from rtsnn.config import ConfigError, SessionConfig, config_to_yaml
from rtsnn.runtime.outputs_file import OUTPUTS_JSON, outputs_description

log = logging.getLogger("rtsnn.session")

FAILED_FILE = "FAILED"  # in a session folder whose run ended in a failure: the reason, one line


def _now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def owner_only(path: str | os.PathLike, flags: int) -> int:
    """An ``opener`` for :func:`open`: the file is created 0600 and made 0600 if it existed
    (the mode given to ``os.open`` only applies to a new file and is masked by the umask, which
    can only take bits away)."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def atomic_write(path: Path, text: str) -> None:
    """``text`` to ``path`` owner-only (0600), through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", opener=owner_only) as f:
        f.write(text)
    os.replace(tmp, path)


def restrict_to_owner(folder: Path) -> None:
    """``folder`` and every folder under it 0700, every regular file 0600 (links are not
    followed, sockets left alone): what stages wrote with their own modes becomes private too."""
    try:
        os.chmod(folder, 0o700)
    except OSError:  # the folder is gone (removed by hand mid-run): nothing left to protect
        return
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            try:
                mode = os.lstat(p).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(p, 0o700)
                elif stat.S_ISREG(mode):
                    os.chmod(p, 0o600)
            except OSError:  # gone meanwhile (a temp file renamed): nothing to protect
                pass


def _os_reason(err: OSError, path: Path) -> str:
    """What went wrong making ``path``, in words (a file in the way, no permission, ...)."""
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            return f"{str(p)!r} is a file, not a folder"
    return err.strerror or str(err)


def make_session_folder(cfg: SessionConfig, origin: str, output_labels: list[str],
                        output_units: list[str]) -> Path:
    """``<out_dir>/<name>-<UTC time>``, owner-only (0700), with ``config.yaml`` and
    ``outputs.json`` (0600). An ``out_dir`` that cannot be made or used (a file in the
    way, no permission) is an OSError whose one-line message names ``session.out_dir``."""
    s = cfg.session
    out_dir = Path(os.path.normpath(s.out_dir))  # printed: no "a/../"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"{origin}: session.out_dir: cannot create {str(s.out_dir)!r}: "
                      f"{_os_reason(err, out_dir)}") from None
    # check_session_name made the name one path component: the folder is a child of out_dir
    folder = out_dir / f"{s.name}-{_now_utc()}"
    if folder.parent != out_dir or folder.name in ("", ".", ".."):
        raise ConfigError(f"{origin}: session.name: {s.name!r} would leave session.out_dir")
    try:
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    except OSError as err:
        raise OSError(f"{origin}: session.out_dir: cannot create the session folder in "
                      f"{str(s.out_dir)!r}: {_os_reason(err, out_dir)}") from None
    atomic_write(folder / "config.yaml", config_to_yaml(cfg))
    atomic_write(folder / OUTPUTS_JSON, json.dumps(  # read back by outputs_file.read_outputs
        outputs_description(output_labels, output_units), indent=1, allow_nan=False))
    return folder


def mark_failed(folder: Path | None, failed: str | None) -> None:
    """``FAILED`` in the session folder: the reason the run failed, one line (0600)."""
    if folder is None or failed is None:
        return
    try:
        atomic_write(folder / FAILED_FILE, " ".join(failed.split()) + "\n")
    except OSError as err:  # the folder went away / the disk is full: the error itself still reaches the caller
        log.error("could not write %s: %s", folder / FAILED_FILE, err)

