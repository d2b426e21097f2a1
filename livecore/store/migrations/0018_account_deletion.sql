-- Deleted accounts. The row stays (tips, subscriptions, payouts and the ledger refer to it,
-- and money records are kept as the law requires) but holds no personal data any more:
-- livecore.store.data_rights replaces the e-mail and the display name with a tombstone and
-- makes the password hash one that no password matches. deleted_at says when.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
