/**
 * Temporary SQLite files for the tests: each storage its own file in a
 * folder of its own, removed when the file's tests are done.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export class TempFiles {
  private readonly dirs: string[] = [];

  /** A fresh path (its folder exists; the file does not yet). */
  next(name = "qml.db"): string {
    const dir = mkdtempSync(join(tmpdir(), "qml-sqlite-"));
    this.dirs.push(dir);
    return join(dir, name);
  }

  removeAll(): void {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}
