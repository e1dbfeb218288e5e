"""Template rtsnn sensor adapter (entry point ``rtsnn.sources: mysensor``)."""

from rtsnn_mysensor.source import MySensorSource

__all__ = ["MySensorSource"]
