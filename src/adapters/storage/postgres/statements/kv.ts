/**
 * The key-value statements (kv table, migration 0005). Each write also
 * deletes up to 100 expired rows other than its own key, in the same
 * statement: the table purges itself at the pace it is written, with no
 * job to schedule. (Its own key is left out because one statement must not
 * modify a row twice; its upsert replaces that row anyway.) Rows are
 * locked SKIP LOCKED, so concurrent writers purge different rows and never
 * wait on each other.
 */
import { tables } from "./fragments.js";

export interface KvStatements {
  kvGet: string;
  kvSet: string;
  kvAdd: string;
  kvDelete: string;
  kvHit: string;
}

/** The purge CTE every write starts with. Input: $1 key, $2 now. */
function purge(s: string): string {
  return `purged AS (
  DELETE FROM ${s}.kv WHERE key = ANY (ARRAY(
    SELECT key FROM ${s}.kv WHERE expires_at <= $2::bigint AND key <> $1::text LIMIT 100 FOR UPDATE SKIP LOCKED))
)`;
}

export function kvStatements(schema: string): KvStatements {
  const { s } = tables(schema);
  return {
    /** Input: $1 key, $2 now. Output: value, when the row is live. */
    kvGet: `SELECT value FROM ${s}.kv WHERE key = $1::text AND (expires_at IS NULL OR expires_at > $2::bigint)`,
    /** Input: $1 key, $2 now, $3 value, $4 expiresAt (null: none). Output: nothing. */
    kvSet: `
WITH ${purge(s)}
INSERT INTO ${s}.kv (key, value, expires_at) VALUES ($1::text, $3::text, $4::bigint)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
    /**
     * kvSet when the key is absent or expired. A live row is written back
     * as it was (a DO UPDATE ... WHERE that skips it would return no row,
     * and a SELECT in the same statement misses a row a concurrent adder
     * committed after this statement's snapshot).
     * Input: as kvSet. Output: value, the one stored after the statement.
     */
    kvAdd: `
WITH ${purge(s)}
INSERT INTO ${s}.kv AS kv (key, value, expires_at) VALUES ($1::text, $3::text, $4::bigint)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN kv.expires_at <= $2::bigint THEN EXCLUDED.value ELSE kv.value END,
  expires_at = CASE WHEN kv.expires_at <= $2::bigint THEN EXCLUDED.expires_at ELSE kv.expires_at END
RETURNING value`,
    /** Input: $1 key. Output: one row when there was an entry. */
    kvDelete: `DELETE FROM ${s}.kv WHERE key = $1::text RETURNING 1 AS deleted`,
    /**
     * Counts one hit in a fixed window. A live row holding a count goes up
     * by one; anything else (no row, an ended window, a row without a
     * count) starts a window at now.
     * Input: $1 key, $2 now, $3 windowMs. Output: count, reset_at (as text).
     */
    kvHit: `
WITH ${purge(s)}
INSERT INTO ${s}.kv AS kv (key, value, expires_at) VALUES ($1::text, '1', $2::bigint + $3::bigint)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN kv.expires_at > $2::bigint AND kv.value ~ '^[0-9]{1,15}$' THEN (kv.value::bigint + 1)::text ELSE '1' END,
  expires_at = CASE WHEN kv.expires_at > $2::bigint AND kv.value ~ '^[0-9]{1,15}$' THEN kv.expires_at ELSE EXCLUDED.expires_at END
RETURNING value AS count, expires_at::text AS reset_at`,
  };
}
