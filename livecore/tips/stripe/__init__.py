"""The Stripe edge of the money package: every call to Stripe's API (gateway.py), Stripe's
objects read into livecore's values (objects.py), and webhook events verified and read into
one frozen value per kind (events.py).

The only package that imports the `stripe` library (ruff's banned-api) and the only one that
reads Stripe's JSON; it imports nothing of the money package but its processor-neutral types
and errors (tips/providers.py), and may import store, config and ids.
"""
