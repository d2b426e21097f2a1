"""The Stripe edge of the money package: every call to Stripe's API (gateway.py).

The only package that imports the `stripe` library; it imports nothing of the money package
but its processor-neutral types and errors (tips/providers.py), and may import store, config
and ids.
"""
