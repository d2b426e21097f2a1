-- Which node carries each open broadcast, so that a broadcast can move to another node (its
-- publisher reconnected there while its node drained) and a dead node's broadcasts are ended
-- by exactly one survivor; and how many times it moved (the live playlist's discontinuity
-- sequence). '' : written by a node older than this migration.
ALTER TABLE broadcasts ADD COLUMN node_id text NOT NULL DEFAULT '';
ALTER TABLE broadcasts ADD COLUMN continuations integer NOT NULL DEFAULT 0;
CREATE INDEX broadcasts_open_node_idx ON broadcasts (node_id) WHERE ended_at IS NULL;
