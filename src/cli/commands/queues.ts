/**
 * Pausing queues: `pause`, `resume`, `paused`. A paused queue keeps taking
 * jobs; no server or invocation claims from it until it is resumed.
 */
import { Command } from "commander";
import { printJson, printLine } from "../output.js";
import { withStorage } from "../store.js";

export function queueCommands(program: Command): void {
  program
    .command("pause")
    .description("stop every server and invocation from claiming the queue's jobs (it keeps taking new ones)")
    .argument("<queue>", "queue name")
    .action(async (queue: string) => {
      await withStorage((storage) => storage.pauseQueue(queue));
      printLine(`paused ${queue}`);
    });

  program
    .command("resume")
    .description("let the queue's jobs run again")
    .argument("<queue>", "queue name")
    .action(async (queue: string) => {
      await withStorage((storage) => storage.resumeQueue(queue));
      printLine(`resumed ${queue}`);
    });

  program
    .command("paused")
    .description("list the paused queues")
    .option("--json", "print the names as a JSON array")
    .action(async (flags: { json?: boolean }) => {
      const queues = await withStorage((storage) => storage.pausedQueues());
      if (flags.json) printJson(queues);
      else printLine(queues.length === 0 ? "no queue is paused" : queues.join("\n"));
    });
}
