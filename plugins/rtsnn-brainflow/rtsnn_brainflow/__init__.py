"""rtsnn sensor adapter for BrainFlow boards (entry point ``rtsnn.sources: brainflow``)."""

from rtsnn_brainflow.source import BrainFlowSource

__all__ = ["BrainFlowSource"]
