-- The manifest schema as kinetix 8a6bc88 (before the clip counters) created it.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE clips (release TEXT NOT NULL, split TEXT NOT NULL, key TEXT NOT NULL, youtube_id TEXT NOT NULL, time_start INTEGER NOT NULL, time_end INTEGER NOT NULL, label TEXT, label_index INTEGER, is_cc INTEGER, state TEXT NOT NULL DEFAULT 'missing', source TEXT, shard TEXT, path TEXT, bytes INTEGER, sha256 TEXT, mtime REAL, error_code TEXT, error_message TEXT, attempts INTEGER NOT NULL DEFAULT 0, trim TEXT, start_offset REAL, origin TEXT, verify TEXT, verify_level TEXT, verified_at REAL, duration REAL, fps REAL, width INTEGER, height INTEGER, num_frames INTEGER, codec TEXT, has_audio INTEGER, created_at REAL, updated_at REAL, PRIMARY KEY (release, split, key));
CREATE TABLE shards (url TEXT PRIMARY KEY, release TEXT, split TEXT, name TEXT, size INTEGER, etag TEXT, bytes_done INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending', members INTEGER, error_code TEXT, error_message TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at REAL);
CREATE INDEX clips_state ON clips (split, state);
CREATE TABLE shard_members (url TEXT NOT NULL, key TEXT NOT NULL, bytes INTEGER, PRIMARY KEY (url, key));
CREATE INDEX shard_members_key ON shard_members (key);
INSERT INTO meta VALUES ('schema_version', '1');
