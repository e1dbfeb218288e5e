"""A MATLAB v7.3 file written the way MATLAB writes one (for the tests): HDF5 behind a
512-byte user block that starts with the 116-byte text header, then the subsystem offset,
version 0x0200 and the endian marker 'IM'; every variable a dataset stored column-major (an
m x n matrix as shape (n, m)) with a MATLAB_class attribute; char as uint16 codes; a cell
array of strings as object references into ``#refs#``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.int32): "int32",
         np.dtype(np.int16): "int16", np.dtype(np.uint8): "uint8", np.dtype(bool): "logical"}
HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026 HDF5 schema 1.00 ."


def _char(group, name: str, text: str):
    ds = group.create_dataset(name, data=np.array([ord(c) for c in text], np.uint16).reshape(-1, 1))
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    return ds


def write_mat73(path: Path, variables: dict) -> Path:
    """``variables``: name -> 2-D numeric array (MATLAB's m x n), scalar, str, or list of str (a 1 x k cell)."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            if isinstance(value, str):
                _char(f, name, value)
            elif isinstance(value, list):
                cells = [_char(refs, f"{name}_{i}", s).ref for i, s in enumerate(value)]
                ds = f.create_dataset(name, data=np.array(cells, dtype=h5py.ref_dtype).reshape(-1, 1))
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                a = np.atleast_2d(np.asarray(value))
                ds = f.create_dataset(name, data=a.T)  # column-major, as MATLAB stores it
                ds.attrs["MATLAB_class"] = np.bytes_(CLASS[a.dtype])
    head = HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(head.ljust(512, b"\x00"))
    return path
