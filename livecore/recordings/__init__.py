"""Recordings: every broadcast's files, from the first part written to the takedown.

Owns the layout of a recording (`layout`), the storage behind it (`sink` for writing one,
to the local disk; `storage` for listing, reading and deleting: the local disk, or an
S3-compatible bucket, `bucket_storage` over `bucket`, which `uploader` fills as segments
complete), writing one as its broadcast goes on (`writer`: atomic writes, part pruning, the
VOD playlist in `playlist`), serving it as VOD (`routes`; a recording in legs, its
broadcast having moved between nodes, as one playlist: `joined`), `retention`, `recovery` after a
crash (`recovery.finish_recording`: a recording finished from what its storage holds) and
`takedown`. `hls/` writes through it and `streams/` asks it; it imports
neither (only `store`, `config`, `errors` and `ids`).
"""
