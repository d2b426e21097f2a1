"""An account's rights over its data: the export (`GET /api/v1/me/export`) and the
deletion of the account (`DELETE /api/v1/me`).

Above the features in the layers, beside livecore.admin: a deletion cancels subscriptions
through the money package (livecore.tips), ends live broadcasts (livecore.streams) and
closes chat sockets on every node (the account-revocation event that livecore.admin's
listener hears).
"""
