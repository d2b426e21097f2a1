-- With recordings in a shared bucket, a deleted recording's objects are removed once, by
-- whichever node sweeps (or takes it down), and this records that they are gone, so later
-- sweeps neither look for nor delete them again. Local-disk nodes do not use it: each
-- removes what its own disk holds.
ALTER TABLE broadcasts ADD COLUMN recording_files_removed_at timestamptz;
-- Recordings deleted longer ago than sweeps looked back (7 days) were never going to be
-- removed again: no sweep after this upgrade starts on them.
UPDATE broadcasts SET recording_files_removed_at = recording_deleted_at
    WHERE recording_deleted_at < now() - interval '7 days';
CREATE INDEX broadcasts_files_to_remove_idx ON broadcasts (id)
    WHERE recording_deleted_at IS NOT NULL AND recording_files_removed_at IS NULL;
