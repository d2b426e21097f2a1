-- Two-factor authentication (TOTP, RFC 6238) and its recovery codes.
-- A row with enabled_at NULL is an enrolment waiting for its first code; logins ask for a
-- code only once enabled_at is set. last_step is the newest time step whose code was
-- accepted: a code is good once, and never after a newer one.
CREATE TABLE two_factor (
    user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret     text NOT NULL,
    enabled_at timestamptz,
    last_step  bigint,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Each code is kept only as its keyed hash and is used at most once.
CREATE TABLE two_factor_recovery (
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
