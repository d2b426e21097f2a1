"""HLS out: the fMP4/CMAF packager, LL-HLS playlists and the HTTP handlers that serve them.

May import: sfu (the hub reader API only), recordings (files are written through its
writer, named by its layout), transcode (renditions, packaging processes, thumbnails' process
pool), leaf modules. Never store/ or auth/: the routes find streams through the `HlsDirectory`
protocol (`views.py`) that `setup.py` implements with this node's origin.
"""
