"""Moved to :mod:`rtsnn.runtime.monitor` (the session publishes the monitor streams; the
dashboard in this package reads them). Re-exported here for old imports."""

from rtsnn.runtime.monitor import *  # noqa: F401,F403
from rtsnn.runtime.monitor import (OUTPUTS_TYPE, RASTER_TYPE, STATUS_TYPE, MonitorTap,  # noqa: F401
                                   SessionMonitor, _jsonable, hist_bin_edges_ns, pack_raster, raster_words,
                                   unpack_raster)
