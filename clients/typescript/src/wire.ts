/**
 * A job on the wire, built exactly as simbi_workers/wire.py builds it: RQ's job hash with
 * a zlib-compressed JSON `data` field `[func_path, null, args, {}]`, a description that
 * redacts secret arguments, and the unique digest over the arguments with sorted keys.
 * enqueue.lua adds status, enqueued_at and simbi_unique.
 */
import { createHash, randomUUID } from 'node:crypto';
import { deflateSync } from 'node:zlib';

import type { WorkerSpec } from './catalog.js';
import { type JsonValue, pyDumps, short } from './json.js';

const FUNC_PREFIX = 'simbi_workers.jobs.';
const REDACTED = '[redacted]';

export interface Ttls {
  resultTtl: number;
  failureTtl: number;
}

export function newId(): string {
  return randomUUID();
}

/** Now as RQ writes times: ISO 8601 with microseconds and a Z. */
export function rqNow(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function describe(spec: WorkerSpec, args: JsonValue[]): string {
  const shown = args.map((arg, index) => (spec.secretPositions.includes(index) ? REDACTED : arg));
  return `${spec.name}(${shown.map((arg) => short(pyDumps(arg))).join(', ')})`;
}

export function uniqueDigest(args: JsonValue[]): string {
  const text = pyDumps(args, { sortKeys: true, compact: true });
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32);
}

export function uniqueLock(worker: string, args: JsonValue[]): string {
  return `simbi:unique:${worker}:${uniqueDigest(args)}`;
}

/** The job hash fields this client writes, in the order the Python client writes them. */
export function jobFields(
  spec: WorkerSpec,
  args: JsonValue[],
  now: string,
  ttls: Ttls,
): Array<string | Buffer> {
  const data = pyDumps([FUNC_PREFIX + spec.name, null, args, {}]);
  return [
    'created_at',
    now,
    'data',
    deflateSync(Buffer.from(data, 'utf8')),
    'description',
    describe(spec, args),
    'origin',
    spec.queue,
    'timeout',
    String(spec.timeout),
    'result_ttl',
    String(ttls.resultTtl),
    'failure_ttl',
    String(ttls.failureTtl),
    'simbi_worker',
    spec.name,
    'simbi_attempt',
    '0',
  ];
}
