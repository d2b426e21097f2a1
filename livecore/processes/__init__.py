"""livecore.processes: several processes serving one port on one box (`livecore serve
--processes N`).

The parent (`supervisor.py`) binds the shared port N times with SO_REUSEPORT and a port of
its own for each process (`sockets.py`), starts the embedded services the processes share
(the embedded PostgreSQL, in cli.py; a private redis-server when no Redis is configured,
`redis_server.py`), then (migrations applied once by serve.py) starts N `livecore serve`
children, each a node of its own in the stream directory, and watches them. `child.py` is a
child's side: the sockets it was handed and the line to its parent.

Imports config, cluster.node (a process's node identity) and secretkey; never the app: the
children build it.
"""
