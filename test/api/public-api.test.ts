/**
 * The package's surface, written down: every name each entry point of
 * package.json exports, with its kind and signature (for a class, its public
 * members). The report is a committed file (public-api.txt): a change to
 * the surface changes it, and shows in review. After a deliberate change,
 * refresh it with `npx vitest run test/api -u`.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** package.json's exports, mapped from dist/*.js back to their src/*.ts. */
function entryPoints(): Array<{ name: string; file: string }> {
  const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { name: string; exports: Record<string, { default: string }> };
  return Object.entries(pkg.exports).map(([sub, target]) => ({
    name: sub === "." ? pkg.name : `${pkg.name}/${sub.slice(2)}`,
    file: `${root}${target.default.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts")}`,
  }));
}

const FLAGS = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope | ts.TypeFormatFlags.WriteArrowStyleSignature;

/** A public member, as `name: type`; nothing for private ones or what Error and Object bring with them. */
function member(checker: ts.TypeChecker, p: ts.Symbol, at: ts.Node, prefix: string): string[] {
  const decls = p.declarations ?? [];
  if (decls.length > 0 && decls.every((d) => /[\\/](typescript[\\/]lib|@types[\\/]node)[\\/]/.test(d.getSourceFile().fileName))) return [];
  const decl = p.valueDeclaration ?? decls[0];
  if (decl && ts.getCombinedModifierFlags(decl as ts.Declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) return [];
  if (p.getName().startsWith("#") || p.getName() === "prototype") return [];
  const optional = p.flags & ts.SymbolFlags.Optional ? "?" : "";
  return [`  ${prefix}${p.getName()}${optional}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(p, at), at, FLAGS)}`];
}

function describeSymbol(checker: ts.TypeChecker, sym: ts.Symbol, at: ts.Node): string[] {
  const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
  const name = sym.getName();
  const f = target.flags;
  if (f & ts.SymbolFlags.Class) {
    const lines = [`class ${name}`];
    const instance = checker.getDeclaredTypeOfSymbol(target);
    const statics = checker.getTypeOfSymbolAtLocation(target, at);
    for (const sig of statics.getConstructSignatures()) lines.push(`  constructor${checker.signatureToString(sig, at, FLAGS).replace(/ => .*$/, "")}`);
    for (const p of statics.getProperties()) lines.push(...member(checker, p, at, "static "));
    for (const p of instance.getProperties()) lines.push(...member(checker, p, at, ""));
    return lines;
  }
  if (f & ts.SymbolFlags.Interface && !(f & ts.SymbolFlags.Value)) {
    const t = checker.getDeclaredTypeOfSymbol(target);
    const params = (target.declarations?.[0] as ts.InterfaceDeclaration | undefined)?.typeParameters?.map((p) => p.getText()).join(", ");
    return [`interface ${name}${params ? `<${params}>` : ""}`, ...t.getProperties().flatMap((p) => member(checker, p, at, ""))];
  }
  if (f & ts.SymbolFlags.TypeAlias && !(f & ts.SymbolFlags.Value)) {
    const decl = target.declarations?.[0] as ts.TypeAliasDeclaration | undefined;
    return [`type ${name} = ${decl ? decl.type.getText().replace(/\s+/g, " ") : checker.typeToString(checker.getDeclaredTypeOfSymbol(target), at, FLAGS)}`];
  }
  if (f & ts.SymbolFlags.Function) return [`function ${name}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(target, at), at, FLAGS)}`];
  const kind = f & ts.SymbolFlags.TypeAlias || f & ts.SymbolFlags.Interface ? "const+type" : "const";
  return [`${kind} ${name}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(target, at), at, FLAGS)}`];
}

function report(): string {
  const entries = entryPoints();
  const config = ts.getParsedCommandLineOfConfigFile(`${root}tsconfig.json`, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  const program = ts.createProgram(
    entries.map((e) => e.file),
    { ...config.options, noEmit: true },
  );
  const checker = program.getTypeChecker();
  const out: string[] = [];
  for (const e of entries) {
    const source = program.getSourceFile(e.file);
    if (!source) throw new Error(`entry point ${e.name}: ${e.file} not found`);
    const moduleSymbol = checker.getSymbolAtLocation(source)!;
    out.push(`## ${e.name}`, "");
    const exports = checker.getExportsOfModule(moduleSymbol).sort((a, b) => a.getName().localeCompare(b.getName()));
    for (const sym of exports) out.push(...describeSymbol(checker, sym, source));
    out.push("");
  }
  return out.join("\n");
}

describe("the public surface", () => {
  it("matches the committed report (test/api/public-api.txt)", async () => {
    await expect(report()).toMatchFileSnapshot("./public-api.txt");
  }, 60_000);

  it("exports no engine internals", () => {
    const text = report();
    for (const internal of [
      "Processor",
      "Completer",
      "Scheduler",
      "encodeCursor",
      "decodeCursor",
      "signRequest",
      "registerDemoWorkers",
      "StorageInstance",
      "MemoryStorage",
    ]) {
      expect(text, internal).not.toMatch(new RegExp(`^(class|function|const|type) ${internal}\\b`, "m"));
    }
  }, 60_000);
});
