/**
 * The embedders' shared end: write a generated module, or with `--check`
 * exit 1 when the committed one differs from what the sources produce.
 */
import { readFileSync, writeFileSync } from "node:fs";

export function writeOrCheck(file: string, text: string, command: string, argv: string[] = process.argv): void {
  if (argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(file, "utf8");
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      console.error(`[qml] ${file} is stale: run ${command}`);
      process.exit(1);
    }
    console.log(`[qml] ${file} is up to date`);
    return;
  }
  writeFileSync(file, text);
  console.log(`[qml] wrote ${file}`);
}
