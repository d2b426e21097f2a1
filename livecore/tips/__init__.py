"""Money: payment providers, tips, the ledger postings they make. May import: store, events,
auth, errors, config."""
