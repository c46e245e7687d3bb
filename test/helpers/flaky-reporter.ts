/**
 * Names the tests that failed and then passed on a retry.
 *
 * Under CI each test gets one retry (vitest.config.ts): a timing-sensitive
 * test on a shared, noisy two-core machine must not throw away a run of two
 * thousand good results. A retry must not hide a bug either, so every test
 * that needed one is listed here, at the end of the run and in the file
 * named by QML_FLAKY_REPORT (one line each), which `.ci/run` prints in its
 * closing lines. A flaky test is a bug to fix, in the test or in the code.
 */
import { appendFileSync } from "node:fs";
import { relative } from "node:path";
import type { Reporter, TestCase } from "vitest/node";

export default class FlakyReporter implements Reporter {
  private readonly flaky: string[] = [];

  onTestCaseResult(testCase: TestCase): void {
    const diagnostic = testCase.diagnostic();
    if (!diagnostic?.flaky) return;
    this.flaky.push(
      `${relative(process.cwd(), testCase.module.moduleId)} > ${testCase.fullName} (passed after ${diagnostic.retryCount} ${diagnostic.retryCount === 1 ? "retry" : "retries"})`,
    );
  }

  onTestRunEnd(): void {
    if (this.flaky.length === 0) return;
    for (const line of this.flaky) console.log(`[flaky] ${line}`);
    const file = process.env.QML_FLAKY_REPORT;
    if (file) appendFileSync(file, this.flaky.map((line) => `${line}\n`).join(""));
  }
}
