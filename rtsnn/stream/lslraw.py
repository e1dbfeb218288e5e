"""Direct ctypes calls into liblsl for the per-tick paths.

pylsl's ``pull_chunk`` allocates fresh numpy arrays (and, by default, Python lists) on
every call, and ``push_sample`` builds a ctypes array from the Python values each time.
Per tick we want neither, so the hot paths call liblsl's C functions with pointers into
buffers allocated once. The functions are bound through our own prototypes (not by
setting ``argtypes`` on ``pylsl.lib``'s shared function objects, which pylsl's own calls
also use).

C signatures (lsl_c_api.h, liblsl 1.18)::

    unsigned long lsl_pull_chunk_f(lsl_inlet in, float *data_buffer, double *timestamp_buffer,
                                   unsigned long data_buffer_elements,
                                   unsigned long timestamp_buffer_elements,
                                   double timeout, int32_t *ec);
    int32_t lsl_push_sample_ftp(lsl_outlet out, const float *data, double timestamp,
                                int32_t pushthrough);
    double lsl_local_clock(void);
    double lsl_time_correction(lsl_inlet in, double timeout, int32_t *ec);

``lsl_pull_chunk_f`` converts any numeric channel format to float32 itself, so one pull
function serves every numeric stream. Error codes: 0 ok, -1 timeout, -2 lost,
-3 argument error, -4 internal error.
"""

from __future__ import annotations

import ctypes

import numpy as np
from pylsl.lib import lib as _lib

LSL_NO_ERROR = 0
LSL_TIMEOUT_ERROR = -1
LSL_LOST_ERROR = -2
LSL_ARGUMENT_ERROR = -3
LSL_INTERNAL_ERROR = -4

_c_int_p = ctypes.POINTER(ctypes.c_int32)

pull_chunk_f = ctypes.CFUNCTYPE(
    ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong,
    ctypes.c_double, _c_int_p)(("lsl_pull_chunk_f", _lib))
push_sample_ftp = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double, ctypes.c_int32)(
    ("lsl_push_sample_ftp", _lib))
time_correction = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_double, _c_int_p)(
    ("lsl_time_correction", _lib))
local_clock = ctypes.CFUNCTYPE(ctypes.c_double)(("lsl_local_clock", _lib))


class ChunkPuller:
    """Pulls float32 chunks from one inlet into buffers it owns, with no allocation per call.

    ``data`` is float32 (max_samples, n_channels), ``timestamps`` float64 (max_samples,).
    ``pull(max_n)`` returns the number of whole samples received (<= max_n); ``error``
    holds liblsl's error code of the last call (0, or LSL_LOST_ERROR when the source is gone).
    """

    def __init__(self, inlet_handle: ctypes.c_void_p, n_channels: int, max_samples: int):
        if n_channels < 1 or max_samples < 1:
            raise ValueError(f"need n_channels >= 1 and max_samples >= 1, got {n_channels}, {max_samples}")
        self.inlet_handle = inlet_handle
        self.n_channels = int(n_channels)
        self.max_samples = int(max_samples)
        self.data = np.zeros((self.max_samples, self.n_channels), np.float32)
        self.timestamps = np.zeros(self.max_samples, np.float64)
        self._data_ptr = ctypes.c_void_p(self.data.ctypes.data)
        self._ts_ptr = ctypes.c_void_p(self.timestamps.ctypes.data)
        self._err = ctypes.c_int32(0)
        self._err_p = ctypes.pointer(self._err)
        self.error = 0

    def pull(self, max_n: int) -> int:
        """Non-blocking (timeout 0): take up to ``max_n`` samples that are already buffered."""
        n_values = pull_chunk_f(self.inlet_handle, self._data_ptr, self._ts_ptr, max_n * self.n_channels,
                                max_n, 0.0, self._err_p)
        self.error = self._err.value
        return n_values // self.n_channels

    def time_correction(self, timeout_s: float) -> float | None:
        """liblsl's clock-offset estimate (s, to add to remote timestamps); None on failure."""
        err = ctypes.c_int32(0)
        value = time_correction(self.inlet_handle, timeout_s, ctypes.byref(err))
        return None if err.value != 0 else float(value)


class SamplePusher:
    """Pushes one float32 sample from a buffer it owns, with no allocation per call.

    Write the values into ``sample`` (float32, n_channels) and call ``push(timestamp)``;
    a timestamp of 0.0 means "now" (liblsl stamps it with its local_clock()).
    """

    def __init__(self, outlet_handle: ctypes.c_void_p, n_channels: int):
        self.outlet_handle = outlet_handle
        self.sample = np.zeros(int(n_channels), np.float32)
        self._ptr = ctypes.c_void_p(self.sample.ctypes.data)

    def push(self, timestamp_s: float) -> int:
        """Returns liblsl's error code (0 = ok)."""
        return push_sample_ftp(self.outlet_handle, self._ptr, timestamp_s, 1)
