"""Real-time media: aiortc peer connections, the per-stream StreamHub, WHEP forwarding.

May import: leaf modules (config). Only `passthrough.py` reaches below aiortc's public API.
"""
