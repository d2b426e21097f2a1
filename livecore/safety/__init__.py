"""Trust and safety: platform reports, the admins' review queue and its actions, reporters'
notifications, and the screening hook.

May import store, auth, events, config, errors and the leaf modules; never chat or tips
(their operations come in through the Protocols in service.py and screening.py, filled by
wiring/moderation.py; safety/setup.py builds the services).
"""
