/**
 * serverTime: the database's clock in epoch ms. Only for aligning lease
 * times across machines (`clockSync`): on D1 this is the database's clock,
 * one for every Worker; on better-sqlite3 it is this machine's. No
 * statement that writes reads it: their times are passed in.
 */
export const serverTime = `SELECT CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) AS t`;
