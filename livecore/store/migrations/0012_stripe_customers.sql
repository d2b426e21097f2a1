-- Each user's Stripe Customer, made the first time they pay with a card: the cards they save
-- are attached to it, and Stripe charges a saved card only together with its customer.
CREATE TABLE stripe_customers (
    user_id      bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    customer_ref text NOT NULL UNIQUE CHECK (customer_ref ~ '^cus_[A-Za-z0-9]{1,255}$'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
