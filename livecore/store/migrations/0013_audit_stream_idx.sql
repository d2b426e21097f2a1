-- The studio reads a stream's audit: entries about the stream itself (target 'stream') and
-- chat actions on users there, which name the stream in details.stream_id.
CREATE INDEX audit_log_stream_idx ON audit_log ((details->>'stream_id'));
