-- Account suspensions and creators' requests to become creators.

-- A suspension is in force while lifted_at IS NULL and (until IS NULL or until > now()):
-- a timed one ends by itself, with no job to run. At most one row per user is not lifted;
-- a new suspension lifts the one before (an expired one included) in its transaction.
CREATE TABLE user_suspensions (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    until      timestamptz,
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    lifted_at  timestamptz,
    lifted_by  bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX user_suspensions_open_idx ON user_suspensions (user_id) WHERE lifted_at IS NULL;

-- With auth.open_creator_signup false, signing up as a creator makes a viewer account and a
-- pending request that an admin approves (the account becomes a creator) or declines.
CREATE TABLE creator_requests (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'declined')),
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    decided_by bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX creator_requests_pending_idx ON creator_requests (user_id)
    WHERE state = 'pending';
CREATE INDEX creator_requests_user_idx ON creator_requests (user_id);
