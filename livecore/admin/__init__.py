"""What admins do to accounts: suspensions, roles and creator requests, and what the admin
console (/admin) reads: the user search, one account in full, the platform's audit log.

Above the features in the layers: an account's suspension ends its live broadcasts
(livecore.streams) and closes its chat sockets (livecore.chat) on every node.
"""
