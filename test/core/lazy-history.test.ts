import { expect, it } from "vitest";
import { Job, JobState } from "../../src/index.js";
import { LazyHistoryRecord, type JobRecord } from "../../src/core/job.js";

const fields: Omit<JobRecord, "history"> = {
  id: "j1",
  name: "n",
  args: [1],
  queue: "default",
  priority: 0,
  state: JobState.Processing,
  attempts: 1,
  maxAttempts: 3,
  createdAt: 1,
  updatedAt: 2,
  runAt: 1,
  leaseToken: 1,
  leaseOwner: "w",
  leaseUntil: 100,
};
const lines = '{"state":"enqueued","at":1,"reason":"enqueued"}\n{"state":"processing","at":2,"reason":"claimed (attempt 1)","worker":"w"}';

it("LazyHistoryRecord: history parsed from its lines when read, assignable, and kept by JSON and toJSON", () => {
  const r = new LazyHistoryRecord(fields, lines);
  expect(r.history).toEqual([
    { state: "enqueued", at: 1, reason: "enqueued" },
    { state: "processing", at: 2, reason: "claimed (attempt 1)", worker: "w" },
  ]);
  expect(r.history).toBe(r.history);
  expect(JSON.parse(JSON.stringify(r))).toEqual({ ...fields, history: r.history });
  expect(r.toJSON()).toEqual({ ...fields, history: r.history });
  r.history = [];
  expect(r.toJSON().history).toEqual([]);
  expect(new LazyHistoryRecord(fields, "").history).toEqual([]);
  // Malformed lines fail when read, not when the record is made.
  const bad = new LazyHistoryRecord(fields, "{oops");
  expect(() => bad.history).toThrow(SyntaxError);
});

it("Job.fromRecord converts the record's history when job.history is first read", () => {
  const r = new LazyHistoryRecord(fields, lines);
  const job = Job.fromRecord(r);
  expect(job.history.map((h) => [h.state, h.at.getTime()])).toEqual([
    ["enqueued", 1],
    ["processing", 2],
  ]);
  expect(job.toJSON().history).toHaveLength(2);
  job.history = [];
  expect(job.history).toEqual([]);
});
