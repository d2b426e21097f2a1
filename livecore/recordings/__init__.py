"""Recordings: every broadcast's files, from the first part written to the takedown.

Owns the layout of a recording (`layout`), the storage behind it (`storage`: a Protocol with
one implementation, the local disk), writing one as its broadcast goes on (`writer`: atomic
writes, part pruning, the VOD playlist), serving it as VOD (`routes`), retention, recovery
after a crash and takedown. `hls/` writes through it and `streams/` asks it; it imports
neither (only `store`, `config`, `errors` and `ids`).
"""
