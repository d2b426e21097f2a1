"""Streams as creators manage them: create, edit, delete, rotate keys, list live ones.

May import: store, auth, recordings, events (never hls or sfu), leaf modules. The HTTP side
is `routes.py` and `end_routes.py`; `setup.py` adds them and the services to the app;
`states.py` is what a broadcast's start and end set off (the publishers' state callback).
"""
