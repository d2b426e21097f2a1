"""Real-time media: aiortc peer connections, the per-stream StreamHub, WHEP forwarding.

May import: transcode (a VP8 publisher's video to H.264, `vp8.py`), leaf modules (config).
Only `passthrough.py` reaches below aiortc's public API.
"""
