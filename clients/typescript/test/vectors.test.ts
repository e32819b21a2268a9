// clients/vectors.json through the TypeScript client: the same Redis state and the same
// refusals as the Python client (tests/test_client_vectors.py wrote the expectations).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { inflateSync } from 'node:zlib';

import type { Redis } from 'ioredis';

import { DEFAULT_CATALOG } from '../src/catalog.js';
import { Client } from '../src/client.js';
import { JobInputError } from '../src/errors.js';
import type { JsonValue } from '../src/json.js';
import { startRedis, type TestRedis } from './redis_server.js';

// Some cases pass what only untyped JavaScript could (a string delay, a bulk row that is not
// a list): `in` and `args_list` are cast to the types the client declares.
interface Call {
  call: 'perform_async' | 'perform_in' | 'perform_at' | 'perform_bulk';
  worker: string;
  args?: JsonValue[];
  args_list?: JsonValue[];
  in?: JsonValue;
  at?: number;
  unique_seconds?: number;
}

interface Case {
  name: string;
  runtimes?: string[];
  settings?: Record<string, number>;
  calls: Call[];
  expect: { refused?: string; returns?: unknown; redis?: unknown };
}

const VECTORS = path.resolve(__dirname, '..', '..', '..', 'vectors.json');
const CASES = (JSON.parse(readFileSync(VECTORS, 'utf8')) as { cases: Case[] }).cases;
const RQ_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
type Untyped = Client<Record<string, JsonValue[]>>;

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

async function perform(client: Untyped, call: Call): Promise<string | string[]> {
  const options = client.set({ uniqueSeconds: call.unique_seconds });
  if (call.call === 'perform_bulk')
    return options.performBulk(call.worker, call.args_list as JsonValue[][]);
  if (call.call === 'perform_in')
    return options.performIn(call.in as number, call.worker, ...call.args!);
  if (call.call === 'perform_at') return options.performAt(call.at!, call.worker, ...call.args!);
  return options.performAsync(call.worker, ...call.args!);
}

async function dump(connection: Redis): Promise<Record<string, unknown>> {
  const state: Record<string, unknown> = {};
  for (const key of await connection.keys('*')) {
    const type = await connection.type(key);
    const entry: Record<string, unknown> = { type, expires: (await connection.pttl(key)) > 0 };
    if (type === 'string') entry['value'] = await connection.get(key);
    if (type === 'hash') entry['fields'] = hashFields(await connection.hgetallBuffer(key));
    if (type === 'list') entry['items'] = await connection.lrange(key, 0, -1);
    if (type === 'set') entry['members'] = (await connection.smembers(key)).sort();
    if (type === 'zset')
      entry['members'] = pairs(await connection.zrange(key, 0, -1, 'WITHSCORES'));
    state[key] = entry;
  }
  return state;
}

function hashFields(raw: Record<string, Buffer>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    fields[name] =
      name === 'data' ? { zlib: inflateSync(value).toString('utf8') } : value.toString('utf8');
  }
  return fields;
}

function pairs(flat: string[]): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, Number(flat[i + 1])]);
  return out;
}

function normalize(value: unknown, ids: string[]): unknown {
  if (Array.isArray(value)) return value.map((item) => normalize(item, ids));
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).map(([key, item]) => [
      normalize(key, ids),
      normalize(item, ids),
    ]);
    return Object.fromEntries(entries);
  }
  if (typeof value !== 'string') return value;
  if (RQ_TIME.test(value)) return '{now}';
  return ids.reduce((text, id, index) => text.split(id).join(`{id${index}}`), value);
}

async function runCase(vector: Case): Promise<Record<string, unknown>> {
  const env = {
    ...process.env,
    ...Object.fromEntries(Object.entries(vector.settings ?? {}).map(([k, v]) => [k, String(v)])),
  };
  const client: Untyped = new Client({
    redis: redis.connection,
    catalogFile: DEFAULT_CATALOG,
    env,
  });
  const returns: Array<string | string[]> = [];
  try {
    for (const call of vector.calls) returns.push(await perform(client, call));
  } catch (error) {
    if (!(error instanceof JobInputError)) throw error;
    return { refused: error.message.split(client.catalog.queuesFile).join('{queues_file}') };
  }
  const ids = [...new Set(returns.flat())];
  return { returns: normalize(returns, ids), redis: normalize(await dump(redis.connection), ids) };
}

for (const vector of CASES.filter((c) => (c.runtimes ?? ['typescript']).includes('typescript'))) {
  test(`vector: ${vector.name}`, async () => {
    await redis.connection.flushdb();
    assert.deepStrictEqual(await runCase(vector), vector.expect);
  });
}
