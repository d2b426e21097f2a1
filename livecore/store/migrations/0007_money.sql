-- Money beyond tips: per-creator settings, Stripe webhook events, subscriptions, payouts.

-- A creator's revenue-share override and Stripe connected account (both optional).
CREATE TABLE creator_settings (
    user_id           bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    platform_fee_bps  integer CHECK (platform_fee_bps BETWEEN 0 AND 10000),
    stripe_account_id text CHECK (stripe_account_id ~ '^acct_[A-Za-z0-9]{1,64}$'),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Each Stripe event id once. processed_at is set when its effects are committed; an event
-- whose handling failed stays unprocessed and Stripe's redelivery runs it again.
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);

-- Tips: the platform's share fixed when the tip is made, the processor's charge, refunds so
-- far, why a payment failed, and disputes.
ALTER TABLE tips ADD COLUMN platform_fee_minor bigint NOT NULL DEFAULT 0
    CHECK (platform_fee_minor >= 0 AND platform_fee_minor <= amount_minor);
ALTER TABLE tips ADD COLUMN charge_ref text UNIQUE;
ALTER TABLE tips ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0
    CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor);
ALTER TABLE tips ADD COLUMN failure text;
-- The paying card's fingerprint (the same for every use of a card), for per-card limits.
ALTER TABLE tips ADD COLUMN card_fingerprint text;
CREATE INDEX tips_card_idx ON tips (card_fingerprint, created_at)
    WHERE card_fingerprint IS NOT NULL;
-- When the processor's fee on its charge was posted (fees are read after the payment).
ALTER TABLE tips ADD COLUMN fee_recorded_at timestamptz;
ALTER TABLE tips DROP CONSTRAINT tips_status_check;
ALTER TABLE tips ADD CONSTRAINT tips_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded', 'disputed'));
CREATE INDEX tips_viewer_idx ON tips (viewer_id, created_at);
CREATE INDEX tips_fee_due_idx ON tips (updated_at)
    WHERE fee_recorded_at IS NULL AND provider = 'stripe' AND provider_ref IS NOT NULL
      AND status <> 'pending' AND status <> 'failed';

-- A creator's subscription tiers (monthly prices).
CREATE TABLE subscription_tiers (
    id              bigserial PRIMARY KEY,
    creator_id      bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    price_minor     bigint NOT NULL CHECK (price_minor > 0),
    currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    stripe_price_id text UNIQUE,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creator_id, name)
);

-- A viewer's subscription to a tier. Its state comes from the processor's object; state_at
-- is the time of the newest event applied, so an older event delivered late changes nothing.
CREATE TABLE subscriptions (
    id                   bigserial PRIMARY KEY,
    tier_id              bigint NOT NULL REFERENCES subscription_tiers (id) ON DELETE RESTRICT,
    viewer_id            bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    creator_id           bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    provider             text NOT NULL CHECK (provider IN ('test', 'stripe')),
    provider_ref         text UNIQUE,
    status               text NOT NULL
                             CHECK (status IN ('incomplete', 'active', 'past_due', 'canceled')),
    current_period_end   timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    grace_until          timestamptz,
    state_at             timestamptz NOT NULL DEFAULT 'epoch',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- At most one subscription per viewer and tier that is not over.
CREATE UNIQUE INDEX subscriptions_one_open ON subscriptions (viewer_id, tier_id)
    WHERE status <> 'canceled';
CREATE INDEX subscriptions_viewer_creator_idx ON subscriptions (viewer_id, creator_id);

-- Each paid subscription invoice: what was charged and the platform's share, so that a later
-- refund or dispute of its charge reverses the right amounts.
CREATE TABLE subscription_invoices (
    id                 text PRIMARY KEY,  -- the processor's invoice id
    subscription_id    bigint NOT NULL REFERENCES subscriptions (id) ON DELETE RESTRICT,
    creator_id         bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    charge_ref         text UNIQUE,
    payment_ref        text UNIQUE,  -- the PaymentIntent that paid it (current API versions)
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    platform_fee_minor bigint NOT NULL CHECK (platform_fee_minor >= 0
                                              AND platform_fee_minor <= amount_minor),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    refunded_minor     bigint NOT NULL DEFAULT 0
                           CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    period_start       timestamptz,
    period_end         timestamptz,
    fee_recorded_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- Disputes (chargebacks) of a tip's or an invoice's charge, as the processor reports them.
CREATE TABLE disputes (
    id           text PRIMARY KEY,  -- the processor's dispute id
    charge_ref   text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency     text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Payouts of a creator's earnings: in transit until paid, or failed (money back to them).
CREATE TABLE payouts (
    id           bigserial PRIMARY KEY,
    creator_id   bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency     text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    rail         text NOT NULL CHECK (rail IN ('stripe', 'manual')),
    provider_ref text UNIQUE,
    status       text NOT NULL DEFAULT 'in_transit'
                     CHECK (status IN ('in_transit', 'paid', 'failed')),
    failure      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payouts_creator_idx ON payouts (creator_id, created_at);

-- Statements read a creator's entries by time.
ALTER TABLE ledger_entries ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX ledger_entries_account_time_idx ON ledger_entries (account_id, created_at);
