"""rtsnn-dvs: event cameras for rtsnn.

* :mod:`rtsnn_dvs.files`: ``read_events(path)`` for Prophesee RAW (EVT 2.0, EVT 3.0) and DAT,
  iniVation AEDAT4 and ``.npy`` event arrays (numba decoders in :mod:`rtsnn_dvs.kernels`,
  plain references and writers in :mod:`rtsnn_dvs.reference`).
* :mod:`rtsnn_dvs.recording`: those files as recordings of rtsnn's recording layer (entry-point
  group ``rtsnn.recording_formats``: ``rtsnn recording info events.raw``).
* :mod:`rtsnn_dvs.source`: session sources ``dvs_file`` (a recording paced in real time or
  as fast as possible) and ``dvs_camera`` (a live iniVation camera through dv-processing).
"""

from .files import EventFileError, EventFileWarning, EventRecording, StreamDecoder, read_events

__all__ = ["EventFileError", "EventFileWarning", "EventRecording", "StreamDecoder", "read_events"]
