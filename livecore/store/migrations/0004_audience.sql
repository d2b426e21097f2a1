-- The audience of each broadcast: the most viewers at once, and how many different viewers.
ALTER TABLE broadcasts ADD COLUMN peak_viewers integer NOT NULL DEFAULT 0;
ALTER TABLE broadcasts ADD COLUMN unique_viewers integer NOT NULL DEFAULT 0;
