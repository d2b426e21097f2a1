"""Money: payment providers, tips, the ledger postings they make. May import: store, events,
auth, leaf modules (never chat: see docs/architecture.md)."""
