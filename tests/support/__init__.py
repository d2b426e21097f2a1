"""What the tests share besides fixtures: throwaway PostgreSQL and Redis servers (`services`),
test media and an aiortc publisher (`media`, `rtc`), the Stripe-shaped HTTP peer
(`stripe_peer`), fakes for Protocol seams (`fakes`) and a clock the test moves by hand
(`clock`). The fixtures live in the `conftest.py` files."""
