"""Recording formats that plugins add (entry-point group ``rtsnn.recording_formats``).

A plugin registers a :class:`rtsnn.protocols.RecordingFormat` class under the format's name,
e.g. rtsnn-dvs's event-camera files::

    [project.entry-points."rtsnn.recording_formats"]
    evt3 = "rtsnn_dvs.recording:Evt3Format"

The layer asks these formats only about files its own formats (:data:`rtsnn.recording.detect.FORMATS`)
do not take: by suffix first, then by content. The core imports no plugin: a format class is
loaded from its entry point when a file needs it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from rtsnn.protocols import RECORDING_FORMATS

# what the error for an unknown file suggests, by suffix (the plugin that reads it)
HINTS = {".raw": "rtsnn-dvs", ".dat": "rtsnn-dvs", ".aedat4": "rtsnn-dvs", ".npy": "rtsnn-dvs"}


def installed() -> dict[str, EntryPoint]:
    """The installed plugin formats by name (a name equal to a built-in format is ignored)."""
    from rtsnn.recording.detect import FORMATS

    return {ep.name: ep for ep in entry_points(group=RECORDING_FORMATS) if ep.name not in FORMATS}


def load(name: str, eps: dict[str, EntryPoint] | None = None, where: str = "") -> Any:
    """An instance of plugin format ``name``; ValueError naming it (after ``where``, the file
    being read) when it is not installed or fails to load."""
    eps = installed() if eps is None else eps
    prefix = f"{where}: " if where else ""
    if name not in eps:
        raise ValueError(f"{prefix}no recording format {name!r} is installed; plugin formats: "
                         f"{', '.join(eps) or '(none)'}")
    try:
        return eps[name].load()()
    except Exception as err:  # noqa: BLE001 - a broken plugin is one line naming it, not a traceback
        raise ValueError(f"{prefix}recording format plugin {name!r} ({eps[name].value}) failed to load: "
                         f"{err}") from err


def claim(path: Path, head: bytes, core_seen: str | None) -> tuple[str | None, list[str]]:
    """``(format, claimants)``: the plugin format to read ``path`` with (None when none takes it)
    and the plugin formats whose ``suffixes`` hold the file's suffix.

    Among those claimants, the first whose ``sniff`` accepts ``head`` reads the file; for a
    suffix no plugin claims, the built-in content check ``core_seen`` wins, then the first
    plugin format whose ``sniff`` accepts ``head``. A file whose content no format
    recognises is left to the caller's "unknown format" error (which names the claimants).
    """
    eps = installed()
    if not eps:
        return None, []
    suffix = path.suffix.lower()
    formats = {name: load(name, eps, str(path)) for name in eps}
    by_suffix = [name for name, f in formats.items() if suffix and suffix in tuple(f.suffixes)]
    for name in by_suffix:
        if formats[name].sniff(head):
            return name, by_suffix
    if by_suffix or core_seen is not None:
        return None, by_suffix
    return next((name for name, f in formats.items() if f.sniff(head)), None), by_suffix


def read(name: str, path: Path) -> Any:
    """Every stream of ``path`` through plugin format ``name`` (a ``Recording``)."""
    from rtsnn.recording.xdf_reader import Recording

    rec = load(name, where=str(path)).read(str(path))
    if not isinstance(rec, Recording):
        raise ValueError(f"{path}: recording format plugin {name!r} returned {type(rec).__name__}, not a Recording")
    return rec
