/**
 * Typed jobs: one definition gives a typed enqueue and a typed handler.
 *
 *   const sendEmail = defineJob("send_email", z.object({ to: z.email(), subject: z.string() }));
 *   await sendEmail.enqueue(storage, { to: "ada@example.com", subject: "Hi" }, { queue: "mail" });
 *   registry.register(sendEmail.worker(async (email, ctx) => { … email.to … }));
 *
 * The payload is the job's one argument (`job.arguments[0]`). With a schema
 * (zod, or any Standard Schema: valibot, arktype…), a payload that does not
 * pass is refused at enqueue with a ValidationError and never stored, on
 * every path of this process: the typed enqueue, `storage.enqueue(new Job(…))`,
 * a `Client`, and `POST /api/jobs` (422). The handler receives the parsed
 * payload, so defaults and transforms of the schema apply.
 *
 * A definition registers its schema by name for the process: defining a
 * name twice is a ConfigError, so one name has one contract.
 */
import { ConfigError, ValidationError } from "./errors.js";
import { Job, type JobOptions } from "./job.js";
import type { WorkerResult } from "./registry.js";
import type { Worker, WorkerContext } from "./registry.js";
import { validateJobName } from "./rules.js";

/** The Standard Schema interface (standardschema.dev), as zod 4, valibot and arktype implement it. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}
type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined }> };

export type InferInput<S> = S extends StandardSchemaV1<infer I, unknown> ? I : never;
export type InferOutput<S> = S extends StandardSchemaV1<unknown, infer O> ? O : never;

/** Where a typed job can be enqueued: a Storage or a Client (anything with enqueue(Job)). */
export interface JobTarget {
  enqueue(job: Job): Promise<string>;
}

export type TypedHandler<T> = (payload: T, ctx: WorkerContext, job: Job) => Promise<WorkerResult | void> | WorkerResult | void;

export interface JobDefinition<In, Out = In> {
  readonly name: string;
  readonly schema: StandardSchemaV1<In, Out> | undefined;
  /** A Job carrying `payload` as its one argument. Not checked until enqueued. */
  job(payload: In, options?: JobOptions): Job;
  /** Enqueues `payload`; a ValidationError (nothing stored) when it does not pass the schema. */
  enqueue(target: JobTarget, payload: In, options?: JobOptions): Promise<string>;
  /** The payload checked (and transformed) by the schema; a ValidationError otherwise. */
  parse(payload: unknown): Promise<Out>;
  /** A worker for `registry.register(…)` whose handler gets the parsed payload. */
  worker(handler: TypedHandler<Out>, options?: { retryPolicy?: Worker["retryPolicy"] }): Worker;
}

const definitions = new Map<string, StandardSchemaV1>();

/** Defines a typed job. Without a schema the payload type is yours to declare: `defineJob<Email>("send_email")`. */
export function defineJob<T>(name: string): JobDefinition<T>;
export function defineJob<S extends StandardSchemaV1>(name: string, schema: S): JobDefinition<InferInput<S>, InferOutput<S>>;
export function defineJob(name: string, schema?: StandardSchemaV1): JobDefinition<unknown> {
  validateJobName(name);
  if (schema !== undefined) {
    if (typeof schema !== "object" || schema === null || typeof schema["~standard"]?.validate !== "function") {
      throw new ConfigError(`defineJob("${name}", schema): the schema must be a Standard Schema (zod, valibot, arktype…)`);
    }
    if (definitions.has(name) && definitions.get(name) !== schema) throw new ConfigError(`job "${name}" is already defined with another schema`);
    definitions.set(name, schema);
  }
  const parse = async (payload: unknown): Promise<unknown> => (schema ? checkPayload(name, schema, payload) : payload);
  return {
    name,
    schema,
    job: (payload, options = {}) => new Job(name, [payload], options),
    async enqueue(target, payload, options = {}) {
      // Checked here too (the store checks again), so a bad payload never leaves the caller.
      await parse(payload);
      return target.enqueue(new Job(name, [payload], options));
    },
    parse,
    worker(handler, options = {}) {
      return {
        methodName: name,
        ...(options.retryPolicy ? { retryPolicy: options.retryPolicy } : {}),
        execute: async (job, ctx) => handler(await parse(job.arguments[0]), ctx, job),
      };
    },
  };
}

/** Whether any job with a schema is defined in this process (the store then checks payloads). */
export function hasTypedJobs(): boolean {
  return definitions.size > 0;
}

/**
 * Checks jobs of defined names before they are stored: their one argument
 * must pass the definition's schema. Called by Storage.enqueue.
 */
export async function checkTypedJobs(jobs: readonly Job[]): Promise<void> {
  for (const job of jobs) {
    const schema = definitions.get(job.name);
    if (!schema) continue;
    if (job.arguments.length !== 1) throw new ValidationError(`job "${job.name}" takes one argument (its payload); got ${job.arguments.length}`, "arguments");
    await checkPayload(job.name, schema, job.arguments[0]);
  }
}

async function checkPayload(name: string, schema: StandardSchemaV1, payload: unknown): Promise<unknown> {
  const r = await schema["~standard"].validate(payload);
  if (!r.issues) return r.value;
  const issues = r.issues.slice(0, 5).map((i) => {
    const path = (i.path ?? []).map((p) => String(typeof p === "object" && p !== null ? p.key : p)).join(".");
    return path ? `${path}: ${i.message}` : i.message;
  });
  throw new ValidationError(`arguments of "${name}" do not match its schema: ${issues.join("; ")}`, "arguments");
}
