"""Kept for old imports: ``load_recording`` is :func:`rtsnn.recording.open_recording`.

Every format reader now lives in :mod:`rtsnn.recording` (one module per format); nothing is
inferred from the file name any more, so an npz or CSV without a rate of its own needs an
explicit ``rate_hz`` / ``bin_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtsnn.recording.xdf_reader import Recording


def load_recording(path: str | Path, **layout: Any) -> Recording:
    """:func:`rtsnn.recording.open_recording` (same keyword options)."""
    from rtsnn.recording import open_recording

    return open_recording(path, **layout)
