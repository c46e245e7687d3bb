/**
 * What the pg and Neon Pool drivers share: a node-postgres-shaped pool
 * (Neon's Pool is one) behind the narrow query interface. Imports no
 * driver, so the Neon module stays loadable in workerd.
 */
import type { QueryOptions, SqlResult } from "../driver.js";

export interface QueryablePool {
  query(config: { text: string; values: unknown[]; name?: string }): Promise<{ rows: unknown[]; rowCount: number | null }>;
  end(): Promise<void>;
}

export abstract class PoolDriver {
  private closed = false;

  constructor(readonly pool: QueryablePool) {}

  async query<R = Record<string, unknown>>(text: string, params: readonly unknown[] = [], options: QueryOptions = {}): Promise<SqlResult<R>> {
    const res = await this.pool.query({ text, values: params as unknown[], ...(options.name ? { name: options.name } : {}) });
    return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
