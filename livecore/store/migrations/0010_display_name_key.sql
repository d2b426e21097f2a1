-- Display names are unique as people read them. name_key is a name's comparison form
-- (livecore.text.name_key: NFKC, case folded, invisible characters removed), written by
-- livecore with the name: PostgreSQL has no case folding that agrees with it in every
-- locale, so livecore also fills the key of the accounts made before this migration (at
-- start). Of accounts that already shared a name, the oldest gets the key; the others keep
-- their name and no key (NULL, which the unique index lets through).
ALTER TABLE users ADD COLUMN name_key text;
CREATE UNIQUE INDEX users_name_key ON users (name_key);
-- The accounts still without a key, found at every start (few once filled).
CREATE INDEX users_name_key_missing ON users (id) WHERE name_key IS NULL;
