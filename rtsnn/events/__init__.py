"""Event cameras: formats, LSL event streams, pooling encoder (see docs/events.md)."""
