"""Web pages (home, studio, watch) and their static files; imports nothing from livecore.

The pages are plain HTML with small JavaScript modules that talk to the public JSON API,
WHIP and HLS routes like any other client. hls.js comes from npm (`web/package.json`).
"""
