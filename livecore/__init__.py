"""livecore: a live-streaming server for creator platforms."""

__version__ = "0.1.0"
