"""What joins packages that may not import each other, for app.py alone.

`foundation.py`: the deployment's secret key, the database and the event bus (the bus keeps
its room event ids and history in PostgreSQL, and neither store/ nor events/ may import the
other). `media.py`: this node's live media, where sfu/ (hubs, publishers, viewers), hls/ (the
origin and its worker processes) and streams/ (broadcast state) meet. Each adds one cleanup
context; only app.py imports this package.
"""
