"""Streams as creators manage them: create, edit, delete, rotate keys, list live ones.

May import: store, auth, recordings (never hls), leaf modules. The HTTP side is
`routes.py`.
"""
