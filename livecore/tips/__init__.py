"""Money: tips, subscriptions, payouts, the processor's webhooks, and the ledger postings they
make (their entries all from postings.py); its Stripe edge is the stripe/ subpackage. May
import: store, events, auth, leaf modules (never chat: see docs/architecture.md)."""
