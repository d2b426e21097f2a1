-- One row per broadcast (a go-live to its end): what was sent, and where its recording is.

CREATE TABLE broadcasts (
    id            bigserial PRIMARY KEY,
    stream_id     bigint NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    video_codec   text NOT NULL DEFAULT '',
    audio_codec   text NOT NULL DEFAULT '',
    width         integer,
    height        integer,
    bitrate_bps   integer,
    recording_path text NOT NULL DEFAULT '',
    recording_bytes bigint NOT NULL DEFAULT 0,
    recording_deleted_at timestamptz
);
CREATE INDEX broadcasts_stream_idx ON broadcasts (stream_id, started_at DESC);
-- At most one broadcast of a stream is open at a time.
CREATE UNIQUE INDEX broadcasts_open_idx ON broadcasts (stream_id) WHERE ended_at IS NULL;
