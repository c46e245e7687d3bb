/*
 * The key-value statements (qml_kv, migration 0003). Each write is one
 * batch: `purge` (up to 100 expired rows other than the key written, so the
 * table purges itself at the pace it is written), then the write. Every
 * statement's parameters start with ?1 key (and ?2 now where it reads the clock).
 */

/** Input: ?1 key, ?2 now. */
export const kvPurge = `
DELETE FROM qml_kv WHERE key IN (
  SELECT key FROM qml_kv WHERE expires_at <= ?2 AND key <> ?1 LIMIT 100)`;

/** Input: ?1 key, ?2 now. Output: value, when the row is live. */
export const kvGet = `SELECT value FROM qml_kv WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)`;

/** Input: ?1 key, ?2 value, ?3 expiresAt (null: none). */
export const kvSet = `
INSERT INTO qml_kv (key, value, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`;

/**
 * kvSet when the key is absent or expired; a live row is written back as
 * it was, so that RETURNING always answers the value stored.
 * Input: ?1 key, ?2 now, ?3 value, ?4 expiresAt (null: none). Output: value.
 */
export const kvAdd = `
INSERT INTO qml_kv (key, value, expires_at) VALUES (?1, ?3, ?4)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN qml_kv.expires_at <= ?2 THEN excluded.value ELSE qml_kv.value END,
  expires_at = CASE WHEN qml_kv.expires_at <= ?2 THEN excluded.expires_at ELSE qml_kv.expires_at END
RETURNING value`;

/** Input: ?1 key. Output: one row when there was an entry. */
export const kvDelete = `DELETE FROM qml_kv WHERE key = ?1 RETURNING 1 AS deleted`;

/**
 * One hit in a fixed window: a live row holding a count (integer text)
 * goes up by one; anything else starts a window at now.
 * Input: ?1 key, ?2 now, ?3 windowMs. Output: count, reset_at.
 */
export const kvHit = `
INSERT INTO qml_kv (key, value, expires_at) VALUES (?1, '1', ?2 + ?3)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN qml_kv.expires_at > ?2 AND CAST(CAST(qml_kv.value AS INTEGER) AS TEXT) = qml_kv.value
    THEN CAST(CAST(qml_kv.value AS INTEGER) + 1 AS TEXT) ELSE '1' END,
  expires_at = CASE WHEN qml_kv.expires_at > ?2 AND CAST(CAST(qml_kv.value AS INTEGER) AS TEXT) = qml_kv.value
    THEN qml_kv.expires_at ELSE excluded.expires_at END
RETURNING CAST(value AS INTEGER) AS count, expires_at AS reset_at`;
