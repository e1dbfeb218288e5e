"""Moved to :mod:`rtsnn.clock` (the base layer: the stream layer's synthetic user paces with it
too); this name stays until the session imports it from there."""

from rtsnn.clock import DeadlineClock  # noqa: F401
