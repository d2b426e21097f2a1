-- Tips: one row per tip a viewer sends; the Idempotency-Key makes a retried request the same tip.
CREATE TABLE tips (
    id              bigserial PRIMARY KEY,
    stream_id       bigint NOT NULL REFERENCES streams (id) ON DELETE RESTRICT,
    viewer_id       bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    creator_id      bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    message         text NOT NULL DEFAULT '' CHECK (length(message) <= 200),
    provider        text NOT NULL CHECK (provider IN ('test', 'stripe', 'manual')),
    provider_ref    text UNIQUE,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (viewer_id, idempotency_key)
);
CREATE INDEX tips_creator_idx ON tips (creator_id, created_at);
