-- The double-entry money ledger. The database itself enforces its rules:
-- every transaction sums to zero per currency (checked at commit), entries are immutable,
-- amounts are integer minor units, and an external reference is posted at most once.

CREATE TABLE ledger_accounts (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN (
                      'creator', 'platform_revenue', 'processor_clearing', 'processor_fees',
                      'refunds', 'disputes', 'payouts_in_transit', 'payouts_paid')),
    owner_id      bigint REFERENCES users (id) ON DELETE RESTRICT,
    currency      text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    balance_minor bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'creator') = (owner_id IS NOT NULL))
);
-- One account per kind, owner and currency (platform accounts have no owner).
CREATE UNIQUE INDEX ledger_accounts_key ON ledger_accounts (kind, coalesce(owner_id, 0), currency);

CREATE TABLE ledger_transactions (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    external_ref text NOT NULL UNIQUE,  -- e.g. a Stripe event or charge id: posted once
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id             bigserial PRIMARY KEY,
    transaction_id bigint NOT NULL REFERENCES ledger_transactions (id),
    account_id     bigint NOT NULL REFERENCES ledger_accounts (id),
    amount_minor   bigint NOT NULL CHECK (amount_minor <> 0),
    currency       text NOT NULL CHECK (currency ~ '^[a-z]{3}$')
);
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id);
CREATE INDEX ledger_entries_transaction_idx ON ledger_entries (transaction_id);

-- Entries never change once written.
CREATE FUNCTION ledger_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable();

-- An entry's currency is its account's, and the account's balance moves with it, in the
-- same transaction (balances read fast and always equal the sum of their entries).
CREATE FUNCTION ledger_entry_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account_currency text;
BEGIN
    UPDATE ledger_accounts SET balance_minor = balance_minor + NEW.amount_minor
        WHERE id = NEW.account_id RETURNING currency INTO account_currency;
    IF account_currency IS DISTINCT FROM NEW.currency THEN
        RAISE EXCEPTION 'entry currency % does not match its account''s %',
            NEW.currency, account_currency USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_apply();

-- Checked at commit, once all of a transaction's entries are in.
CREATE FUNCTION ledger_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ledger_entries WHERE transaction_id = NEW.transaction_id
        GROUP BY currency HAVING sum(amount_minor) <> 0
    ) THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced();

-- A balance moves only with an entry (the trigger above), never by a direct UPDATE.
CREATE FUNCTION ledger_balance_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance_minor IS DISTINCT FROM OLD.balance_minor AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'ledger balances change only through entries'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_balance_guard BEFORE UPDATE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_balance_guard();
