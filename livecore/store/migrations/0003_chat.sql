-- Chat: per-stream room settings, bans and timeouts, messages (for moderation), reports.

CREATE TABLE chat_settings (
    stream_id        bigint PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    slow_mode_s      integer NOT NULL DEFAULT 0 CHECK (slow_mode_s BETWEEN 0 AND 3600),
    subscribers_only boolean NOT NULL DEFAULT false,
    links_allowed    boolean NOT NULL DEFAULT false,
    banned_terms     text[] NOT NULL DEFAULT '{}',
    max_length       integer NOT NULL DEFAULT 500 CHECK (max_length BETWEEN 1 AND 2000),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A ban (until IS NULL) or a timeout (until in the future) of a user in a stream's chat.
CREATE TABLE chat_bans (
    stream_id  bigint NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      timestamptz,
    reason     text NOT NULL DEFAULT '',
    by_user    bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, user_id)
);

CREATE TABLE chat_messages (
    stream_id  bigint NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    id         bigint NOT NULL,  -- the event id in the stream's room
    user_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (stream_id, id)
);

CREATE TABLE chat_reports (
    id          bigserial PRIMARY KEY,
    stream_id   bigint NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL,
    reporter_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason      text NOT NULL DEFAULT '',
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved', 'dismissed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_by bigint REFERENCES users (id) ON DELETE SET NULL,
    resolved_at timestamptz,
    UNIQUE (stream_id, message_id, reporter_id)
);
CREATE INDEX chat_reports_open_idx ON chat_reports (stream_id, created_at) WHERE state = 'open';
