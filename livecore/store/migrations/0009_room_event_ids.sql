-- Room event ids are handed out in blocks reserved here, so an id is never given twice:
-- not after a node restarts (the in-process bus), nor after Redis restarts or is flushed
-- (the Redis bus hands out ids from the block it was given). `reserved` is the highest id
-- of the last block reserved for the room; blocks only grow.
CREATE TABLE room_event_ids (
    stream_id bigint PRIMARY KEY,
    reserved  bigint NOT NULL CHECK (reserved >= 0)
);

-- A chat line's event as viewers received it, so the room's history outlives the bus.
ALTER TABLE chat_messages ADD COLUMN body text;
