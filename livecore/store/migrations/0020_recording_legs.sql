-- A broadcast that moved between nodes (drain, failover) is one recording in legs: leg 0 is
-- what the first node recorded (at the recording path itself), leg k what the node that
-- continued it the k-th time recorded (under "<recording path>/leg-<k>/"). Each leg is
-- finished by the node that wrote it, or, when that node died, by a survivor from what its
-- storage holds; the recording is complete (recording_ready, recording_bytes: every leg's
-- media bytes) once every leg is.
CREATE TABLE recording_legs (
    broadcast_id bigint NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    leg integer NOT NULL CHECK (leg >= 0),
    node_id text NOT NULL,
    finished boolean NOT NULL DEFAULT false,
    bytes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, leg)
);
CREATE INDEX recording_legs_unfinished_idx ON recording_legs (node_id) WHERE NOT finished;
-- Broadcasts live as this runs: their one leg (a recording finished without a row gets
-- its leg 0 as it is finished).
INSERT INTO recording_legs (broadcast_id, leg, node_id)
    SELECT id, 0, node_id FROM broadcasts
    WHERE ended_at IS NULL AND recording_path <> '' AND recording_deleted_at IS NULL;
