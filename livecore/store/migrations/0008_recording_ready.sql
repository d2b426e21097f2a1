-- recording_path is now written when a broadcast starts (so a node restarting after a crash
-- finds the recordings it was writing); a recording is listed and played once it is complete.
ALTER TABLE broadcasts ADD COLUMN recording_ready boolean NOT NULL DEFAULT false;
UPDATE broadcasts SET recording_ready = true WHERE recording_path <> '' AND ended_at IS NOT NULL;
