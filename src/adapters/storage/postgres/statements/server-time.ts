/**
 * serverTime: the database's clock (clock_timestamp(), not the
 * transaction's now()) in epoch ms. Touches no table: it answers before
 * any migration.
 */
export function serverTime(): string {
  return "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS t";
}
