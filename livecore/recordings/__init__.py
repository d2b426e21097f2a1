"""Recordings: every broadcast's files, from the first part written to the takedown.

Owns the layout of a recording (`layout`), the storage behind it (protocols with one
implementation each, the local disk: `sink` for writing one, `storage` for listing, reading
and deleting), writing one as its broadcast goes on (`writer`: atomic writes, part pruning,
the VOD playlist in `playlist`), serving it as VOD (`routes`), `retention`, `recovery` after
a crash and `takedown`. `hls/` writes through it and `streams/` asks it; it imports
neither (only `store`, `config`, `errors` and `ids`).
"""
