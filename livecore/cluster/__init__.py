"""livecore.cluster: nodes and the stream directory.

Each node has an id and an internal URL (`node.py`). The node that ingests a stream records it
in the directory while its hub is open: in-process on one node (`directory.py`), in Redis with
a TTL refreshed by a heartbeat when `redis_url` is set (`redis_directory.py`), so a dead node's
entries vanish within `node.directory_ttl_s`. `directory.owner(slug or stream id)` says which
node holds a live stream. `routes.py` shows operators the nodes alive and their streams;
`setup.py` wires it all to the hub registry.
"""
