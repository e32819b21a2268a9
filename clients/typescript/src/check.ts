/**
 * What the Python client refuses before anything reaches Redis, with its messages word for
 * word (simbi_workers/client.py; clients/vectors.json holds the three clients to it).
 */
import type { Catalog, WorkerSpec } from './catalog.js';
import { JobInputError } from './errors.js';
import {
  checkJsonNative,
  describeValue,
  type JsonValue,
  pyDumps,
  pyFloat,
  pyNumber,
  pyRepr,
  typeName,
} from './json.js';

export const MAX_DELAY_SECONDS = 10 * 365 * 86_400;
const SHOWN_ROW_CHARS = 60; // of a refused perform_bulk row, as Python's repr(row)[:60]

export function findWorker(catalog: Catalog, worker: string): WorkerSpec {
  const spec = catalog.workers.get(worker);
  if (spec) return spec;
  const close = suggest(String(worker), [...catalog.workers.keys()]);
  const hint = close ? ` (did you mean ${close}?)` : '';
  throw new JobInputError(
    `unknown worker ${pyRepr(String(worker))}${hint}: ` +
      `${catalog.queuesFile} declares no such worker`,
  );
}

export function checkArguments(spec: WorkerSpec, args: unknown[], maxPayloadBytes: number): void {
  if (args.length !== spec.args.length) {
    const names = spec.args.join(', ') || 'none';
    throw new JobInputError(
      `${spec.name} takes ${spec.args.length} argument(s) (${names}), got ${args.length}`,
    );
  }
  // By index: a hole in the arguments is refused as undefined (see checkJsonNative).
  for (let index = 0; index < args.length; index++) checkJsonNative(args[index], `args[${index}]`);

  const size = Buffer.byteLength(pyDumps(args as JsonValue[]), 'utf8');
  if (size > maxPayloadBytes) {
    throw new JobInputError(
      `${spec.name}: the arguments are ${thousands(size)} bytes as JSON, over the limit of ` +
        `${thousands(maxPayloadBytes)} (SIMBI_MAX_PAYLOAD_BYTES); ` +
        'store large data elsewhere and pass its key',
    );
  }
}

export function checkUniqueSeconds(value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new JobInputError(
      `unique_seconds must be a positive whole number, got ${reprValue(value)}`,
    );
  }
}

/** A delay in seconds; from untyped JavaScript it may be anything, a string most likely. */
export function checkDelay(seconds: unknown): void {
  if (typeof seconds !== 'number') {
    throw new JobInputError(
      'perform_in: the delay must be a number of seconds or a timedelta, ' +
        `got ${reprValue(seconds)}`,
    );
  }
  if (!(seconds >= 0 && seconds <= MAX_DELAY_SECONDS)) {
    throw new JobInputError(
      `perform_in: the delay must be from 0 to ${thousands(MAX_DELAY_SECONDS)} s (ten years), ` +
        `got ${pyFloat(seconds)} s`,
    );
  }
}

/** Unix seconds from a Date or a number of seconds, at most ten years from now. */
export function epochSeconds(when: Date | number): number {
  const seconds = when instanceof Date ? when.getTime() / 1000 : when;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) {
    throw new JobInputError(`perform_at: expected a datetime or Unix time, got ${reprValue(when)}`);
  }
  if (seconds - Date.now() / 1000 > MAX_DELAY_SECONDS) {
    throw new JobInputError(
      `perform_at: ${reprValue(when)} is more than ten years ahead; the latest time is ` +
        `${thousands(MAX_DELAY_SECONDS)} s from now`,
    );
  }
  return seconds;
}

/**
 * One row of performBulk as a list of arguments. A string is iterable too, but 'abc' as
 * ['a', 'b', 'c'] is never what was meant, so only an array is taken.
 */
export function argumentList(worker: string, index: number, row: unknown): unknown[] {
  if (Array.isArray(row)) return [...row];
  const shown = Array.from(reprValue(row)).slice(0, SHOWN_ROW_CHARS).join('');
  throw new JobInputError(
    `perform_bulk(${worker}): item ${index} must be a list of arguments, got ` +
      `${pyTypeName(row)} ${shown}; for one argument each, write [[1], [2], …]`,
  );
}

/**
 * The known name nearest to `name` (edit distance, ignoring case; the first of a tie), if
 * it is within a third of its length: the same rule as the Python client's `suggest`.
 */
export function suggest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.floor(name.length / 3) + 1;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const left = Array.from(a);
  const right = Array.from(b);
  let previous = Array.from({ length: right.length + 1 }, (_, j) => j);
  left.forEach((charA, i) => {
    const current = [i + 1];
    right.forEach((charB, j) => {
      const cost = charA === charB ? 0 : 1;
      current.push(Math.min(previous[j + 1]! + 1, current[j]! + 1, previous[j]! + cost));
    });
    previous = current;
  });
  return previous[right.length]!;
}

function thousands(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * Python's repr of a JSON scalar (`'abc'`, `1`, `2.5`, `True`, `None`), so that a message
 * about one reads as the Python client's; any other value as JavaScript shows it.
 */
function reprValue(value: unknown): string {
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'string') return pyRepr(value);
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (value === null) return 'None';
  return value instanceof Date ? `Date(${String(value)})` : describeValue(value);
}

/** Python's type name of a JSON scalar (str, int, float, bool, NoneType), else JavaScript's. */
function pyTypeName(value: unknown): string {
  if (typeof value === 'string') return 'str';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'int' : 'float';
  if (typeof value === 'boolean') return 'bool';
  if (value === null) return 'NoneType';
  return typeName(value);
}
