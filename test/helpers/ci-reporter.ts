/**
 * Names what a green-looking run would otherwise hide: tests that failed and
 * then passed on a retry, and errors thrown outside any test.
 *
 * Under CI each test gets one retry (vitest.config.ts): a timing-sensitive
 * test on a shared, noisy two-core machine must not throw away a run of two
 * thousand good results. A retry must not hide a bug either, so every test
 * that needed one is listed (`FLAKY …`). An unhandled error (a rejection or
 * an exception after its test ended) fails the run with every test passed;
 * vitest prints it in the middle of a long log, so it is listed here too
 * (`UNHANDLED …`, with the test it is attributed to and the top of its
 * stack). Both go to the end of the run's output and, one line each, to the
 * file named by QML_CI_REPORT, which `.ci/run` prints in its closing lines.
 * Either is a bug to fix, in the test or in the code.
 */
import { appendFileSync } from "node:fs";
import { relative } from "node:path";
import type { Reporter, SerializedError, TestCase, TestModule } from "vitest/node";

/** One line: the error, the test it surfaced in, and its first frames. */
function describeUnhandled(error: SerializedError): string {
  const where = error as SerializedError & { VITEST_TEST_PATH?: string; VITEST_TEST_NAME?: string; type?: string };
  const test = where.VITEST_TEST_PATH
    ? ` in ${relative(process.cwd(), where.VITEST_TEST_PATH)}${where.VITEST_TEST_NAME ? ` > ${where.VITEST_TEST_NAME}` : ""}`
    : "";
  const frames = (error.stack ?? "")
    .split("\n")
    .filter((line) => line.trim().startsWith("at "))
    .slice(0, 4)
    .map((line) => line.trim().replace(process.cwd() + "/", ""))
    .join(" | ");
  const message = `${error.name ?? "Error"}: ${String(error.message ?? "").split("\n")[0]}`.slice(0, 300);
  return `${where.type ? `${where.type}: ` : ""}${message}${test}${frames ? ` [${frames}]` : ""}`;
}

export default class CiReporter implements Reporter {
  private readonly lines: string[] = [];

  onTestCaseResult(testCase: TestCase): void {
    const diagnostic = testCase.diagnostic();
    if (!diagnostic?.flaky) return;
    this.lines.push(
      `FLAKY ${relative(process.cwd(), testCase.module.moduleId)} > ${testCase.fullName} (passed after ${diagnostic.retryCount} ${diagnostic.retryCount === 1 ? "retry" : "retries"})`,
    );
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    for (const error of unhandledErrors) this.lines.push(`UNHANDLED ${describeUnhandled(error)}`);
    if (this.lines.length === 0) return;
    for (const line of this.lines) console.log(`[ci-report] ${line}`);
    const file = process.env.QML_CI_REPORT;
    if (file) appendFileSync(file, this.lines.map((line) => `${line}\n`).join(""));
  }
}
