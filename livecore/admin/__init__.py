"""What admins do to accounts: suspensions, roles and creator requests, and the user search
an admin console is built on.

Above the features in the layers: an account's suspension ends its live broadcasts
(livecore.streams) and closes its chat sockets (livecore.chat) on every node.
"""
