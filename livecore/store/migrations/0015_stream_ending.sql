-- Ending live streams: whether a stream's moderators may end its broadcasts (the owner's
-- choice, off until the owner turns it on), and publishing blocks set by admins.

CREATE TABLE stream_end_settings (
    stream_id          bigint PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    moderators_may_end boolean NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- One block per stream at most: a new block replaces the one before. A publisher's WHIP
-- POST is refused with the reason while now() < until.
CREATE TABLE publish_blocks (
    stream_id  bigint PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    until      timestamptz NOT NULL,
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
