"""Which format a recording file is in, from its first bytes (and its suffix for text).

Nothing is read from words in the file name: the suffix only says what the user expects,
and the content must agree. A file whose content is one known format while its suffix (or
``fmt=``) names another is refused with both named, e.g. CSV text saved as ``x.npz``.
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("xdf", "edf", "bdf", "npz", "csv", "mat")

# suffix (lower case) -> the format it announces
SUFFIX_FORMAT = {".xdf": "xdf", ".xdfz": "xdf", ".edf": "edf", ".bdf": "bdf", ".npz": "npz", ".csv": "csv",
                 ".mat": "mat"}

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def suffix_format(path: Path) -> str | None:
    """The format the file's suffix announces (``.xdf.gz`` counts as XDF), None when unknown."""
    name = path.name.lower()
    if name.endswith(".xdf.gz"):
        return "xdf"
    return SUFFIX_FORMAT.get(path.suffix.lower())


def sniff(head: bytes) -> str | None:
    """The format the first bytes show (at least 1 KiB of them), None when none is recognised.

    XDF starts with ``XDF:``; gzip (``1f 8b``, a compressed XDF); EDF with ``0`` and seven
    spaces; BDF with ``ff 'BIOSEMI'``; npz is a zip archive (``PK``); MATLAB v5 and v7.3
    start with the text ``MATLAB 5.0 MAT-file`` / ``MATLAB 7.3 MAT-file`` (v7.3 is HDF5
    behind a 512-byte user block); CSV is UTF-8 text with a comma in its first line.
    """
    if head.startswith(b"XDF:") or head.startswith(b"\x1f\x8b"):
        return "xdf"
    if head.startswith(b"0       "):
        return "edf"
    if head.startswith(b"\xffBIOSEMI"):
        return "bdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if head.startswith(b"MATLAB ") and b"MAT-file" in head[:116]:
        return "mat"
    if head.startswith(HDF5_SIGNATURE) or head[512:520] == HDF5_SIGNATURE:
        return "mat"  # an HDF5 file: read as MATLAB v7.3 (variables as datasets)
    if head and b"\x00" not in head:
        try:
            first = head.decode("utf-8").splitlines()[0]
        except (UnicodeDecodeError, IndexError):
            return None
        if "," in first:
            return "csv"
    return None


def all_formats() -> tuple[str, ...]:
    """The built-in formats, then those installed plugins add (``rtsnn.recording_formats``)."""
    from rtsnn.recording.plugins import installed

    return FORMATS + tuple(sorted(installed()))


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """The format to read ``path`` with: ``fmt`` when given, else its suffix or content; a file
    no built-in format takes goes to the plugin formats (:func:`rtsnn.recording.plugins.claim`).

    ValueError (one line naming the file) when the file is missing or empty, when nothing
    says what it is, or when its content is a different known format than the suffix or
    ``fmt`` announce.
    """
    from rtsnn.recording import plugins

    p = Path(path)
    if fmt is not None and fmt not in FORMATS and fmt not in plugins.installed():
        raise ValueError(f"{p}: unknown format {fmt!r}; choose one of {', '.join(all_formats())}")
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    with open(p, "rb") as f:
        head = f.read(1024)
    if not head:
        raise ValueError(f"{p}: the file is empty")
    if fmt is not None and fmt not in FORMATS:
        return fmt  # a plugin's format: its reader checks the content
    seen = sniff(head)
    wanted = fmt or suffix_format(p)
    if wanted is None:
        claimed, claimants = plugins.claim(p, head, seen)
        if claimed is not None:
            return claimed
        if seen is None or claimants:
            hint = plugins.HINTS.get(p.suffix.lower())
            why = (f"; the content is not {' or '.join(claimants)}, the formats that take {p.suffix!r} files"
                   if claimants else f"; {p.suffix} files are read by the {hint} plugin" if hint else "")
            raise ValueError(f"{p}: unknown recording format (suffix {p.suffix!r}, content starts with {head[:8]!r}); "
                             f"supported: {', '.join(all_formats())} (pass fmt= / --format to name one){why}")
        return seen
    if seen is not None and seen != wanted and {seen, wanted} != {"edf", "bdf"}:
        by = f"fmt={fmt!r}" if fmt else f"its suffix {p.suffix!r}"
        raise ValueError(f"{p}: {by} says {wanted} but the content is {seen}"
                         + (" text" if seen == "csv" else "") + f"; rename the file or pass fmt={seen!r}")
    return wanted
