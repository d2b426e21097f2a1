-- Requests to the payment processor about a tip that may have reached it and whose answer is
-- not known (a timeout, a dropped connection, a 5xx; or one still in flight). While any is
-- open the tip may have been charged: it is reconciled with the processor, never moved to
-- the fallback lane.
ALTER TABLE tips ADD COLUMN open_calls integer NOT NULL DEFAULT 0 CHECK (open_calls >= 0);
