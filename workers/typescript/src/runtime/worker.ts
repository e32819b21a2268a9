// The worker registry, the job context and the runner that turns any outcome into `done`.

import type { Host } from "./host";
import { HostError } from "./host";
import type { DoneMessage, ErrorPayload, JobMessage } from "./protocol";

const BACKTRACE_LINES = 20;

export interface JobContext {
  readonly jobId: string;
  readonly attempt: number;
  readonly worker: string;
  readonly host: Host;
  /** Writes "[Worker jobId] msg" to stderr, which the host re-logs. */
  log(message: string): void;
  /** Ends the job successfully without doing anything; the host logs the reason. */
  skip(reason: string): never;
}

export type Handler = (ctx: JobContext, ...args: unknown[]) => Promise<unknown>;

interface WorkerSpec {
  name: string;
  arity: number;
  handler: Handler;
}

/** A failure that retrying cannot fix: the job goes straight to the dead set. */
export class PermanentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PermanentError";
  }
}

class SkipSignal {
  constructor(readonly reason: string) {}
}

const registry = new Map<string, WorkerSpec>();

export function defineWorker(name: string, arity: number, handler: Handler): void {
  if (registry.has(name)) throw new Error(`worker ${name} is defined twice`);
  if (!Number.isInteger(arity) || arity < 0) {
    throw new Error(`worker ${name}: arity must be a whole number >= 0, got ${arity}`);
  }
  registry.set(name, { name, arity, handler });
}

export function workerNames(): string[] {
  return [...registry.keys()].sort();
}

/** Runs one job to its `done` message; it never throws. */
export async function runJob(job: JobMessage, host: Host): Promise<DoneMessage> {
  try {
    const spec = findWorker(job);
    const value = await spec.handler(makeContext(job, host), ...job.args);
    return { type: "done", job_id: job.job_id, value: value ?? null };
  } catch (err) {
    if (err instanceof SkipSignal) {
      return { type: "done", job_id: job.job_id, value: null, skipped: err.reason };
    }
    return { type: "done", job_id: job.job_id, error: errorPayload(err) };
  }
}

function findWorker(job: JobMessage): WorkerSpec {
  const spec = registry.get(job.worker);
  if (spec === undefined) {
    const known = workerNames().join(", ");
    throw new PermanentError(`unknown worker ${job.worker} (this node child serves: ${known})`);
  }
  if (job.args.length !== spec.arity) {
    throw new PermanentError(`${spec.name} expects ${spec.arity} arguments, `
      + `received ${job.args.length}`);
  }
  return spec;
}

function makeContext(job: JobMessage, host: Host): JobContext {
  return {
    jobId: job.job_id,
    attempt: job.attempt,
    worker: job.worker,
    host,
    log(message: string): void {
      process.stderr.write(`[${job.worker} ${job.job_id}] ${message}\n`);
    },
    skip(reason: string): never {
      throw new SkipSignal(reason);
    },
  };
}

/** The protocol's error shape; exceptions are retryable unless known to be permanent. */
export function errorPayload(err: unknown): ErrorPayload {
  if (!(err instanceof Error)) {
    const message = String(err);
    return { class: "Error", message, backtrace: [], retryable: true, retry_after_seconds: null };
  }
  const payload: ErrorPayload = {
    class: err.constructor.name || err.name,
    message: err.message,
    backtrace: backtrace(err),
    retryable: !(err instanceof PermanentError),
    retry_after_seconds: null,
  };
  if (err instanceof HostError) {
    payload.class = err.className;
    payload.retryable = err.retryable;
    payload.retry_after_seconds = err.retryAfterSeconds;
  }
  return payload;
}

function backtrace(err: Error): string[] {
  const lines = (err.stack ?? "").split("\n").filter((line) => /^\s+at /.test(line));
  return lines.slice(0, BACKTRACE_LINES).map((line) => line.trim());
}
