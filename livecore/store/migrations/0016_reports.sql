-- Platform reports (a stream, a user, a recording or a chat line), flags raised by the
-- screening hook, and the notifications that tell reporters what came of them.

CREATE TABLE reports (
    id          bigserial PRIMARY KEY,
    -- NULL: raised by the screening hook, not by a person.
    reporter_id bigint REFERENCES users (id) ON DELETE CASCADE,
    target_kind text NOT NULL CHECK (target_kind IN ('stream', 'user', 'recording', 'line')),
    -- 'stream' and 'recording': the id; 'user': the user id; 'line': '<stream id>:<line id>'.
    target_id   text NOT NULL,
    -- The stream the target belongs to (none for a user), for the owner's queue.
    stream_id   bigint REFERENCES streams (id) ON DELETE CASCADE,
    -- The account the target is about (the user, the line's author, the stream's owner).
    subject_id  bigint REFERENCES users (id) ON DELETE SET NULL,
    category    text NOT NULL CHECK (category IN ('spam', 'harassment_or_hate', 'violence',
                 'sexual_content', 'minor_safety', 'illegal', 'copyright', 'self_harm', 'other')),
    note        text NOT NULL DEFAULT '',
    score       real,
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'actioned', 'dismissed')),
    outcome     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    closed_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    closed_at   timestamptz
);
-- One open report per reporter and target (the 409 on a second one).
CREATE UNIQUE INDEX reports_one_open_idx ON reports (reporter_id, target_kind, target_id)
    WHERE state = 'open' AND reporter_id IS NOT NULL;
CREATE INDEX reports_target_idx ON reports (target_kind, target_id) WHERE state = 'open';
CREATE INDEX reports_queue_idx ON reports (state, created_at);
CREATE INDEX reports_stream_idx ON reports (stream_id, created_at);
CREATE INDEX reports_subject_idx ON reports (subject_id);

CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    body       jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
