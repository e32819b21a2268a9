// What only JavaScript can pass (NaN, Dates, undefined, class instances), the typing of
// calls and helpers, and perform_in's schedule.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { DEFAULT_CATALOG } from '../src/catalog.js';
import { Client } from '../src/client.js';
import { JobInputError } from '../src/errors.js';
import { categoriesFor } from '../src/helpers.js';
import type { JsonValue } from '../src/json.js';
import { startRedis, type TestRedis } from './redis_server.js';

let redis: TestRedis;
let client: Client;
before(async () => {
  redis = await startRedis();
  client = new Client({ redis: redis.connection, catalogFile: DEFAULT_CATALOG });
});
after(async () => {
  await redis.stop();
});

function cyclic(): unknown {
  const list: unknown[] = [];
  list.push(list);
  return list;
}

const untyped = () => client as unknown as Client<Record<string, JsonValue[]>>;

for (const [value, message] of [
  [Number.NaN, 'args[2] is nan: JSON has no NaN or infinity'],
  [
    { when: new Date(0) },
    "args[2]['when'] is a Date (1970-01-01T00:00:00.000Z): arguments must be JSON-native",
  ],
  [
    { tags: [1, new Set([3])] },
    "args[2]['tags'][1] is a Set ([object Set]): arguments must be JSON-native",
  ],
  [
    { missing: undefined },
    "args[2]['missing'] is a undefined (undefined): arguments must be JSON-native",
  ],
  [10n, 'args[2] is a bigint (10): arguments must be JSON-native'],
  // Holes: forEach would skip them and the JSON writer leave them out ("[1,,3]").
  [{ ids: ['a', , 'b'] }, "args[2]['ids'][1] is a undefined (undefined): arguments must be"],
  [new Array(3), 'args[2][0] is a undefined (undefined): arguments must be JSON-native'],
  [cyclic(), 'args[2] is nested more than 32 levels deep'],
] as Array<[unknown, string]>) {
  test(`refuses ${message.split(':')[0]} with its path`, async () => {
    await redis.connection.flushdb();
    await assert.rejects(
      untyped().performAsync('MixpanelTrackWorker', '7', 'event', value as JsonValue),
      (error: Error) => {
        assert.ok(error instanceof JobInputError);
        assert.ok(error.message.startsWith(message), error.message);
        return true;
      },
    );
    assert.equal(await redis.connection.dbsize(), 0);
  });
}

// Beyond the shared vectors: what untyped JavaScript can pass to the call checks.
for (const [name, call, message] of [
  [
    'a boolean delay',
    () => untyped().performIn(true as unknown as number, 'SlackNotifierWorker', 's', null, 'hi'),
    'perform_in: the delay must be a number of seconds or a timedelta, got True',
  ],
  [
    'a Date more than ten years ahead',
    () =>
      untyped().performAt(new Date('9999-01-01T00:00:00Z'), 'SlackNotifierWorker', 's', null, 'hi'),
    'perform_at: Date(',
  ],
  [
    'a bulk row that is an object',
    () => untyped().performBulk('ImageOptimizationWorker', [{ id: 1 } as unknown as JsonValue[]]),
    'perform_bulk(ImageOptimizationWorker): item 0 must be a list of arguments, got Object ',
  ],
] as Array<[string, () => Promise<unknown>, string]>) {
  test(`refuses ${name}`, async () => {
    await assert.rejects(call(), (error: Error) => {
      assert.ok(error instanceof JobInputError);
      assert.ok(error.message.startsWith(message), error.message);
      return true;
    });
  });
}

test('perform_in schedules the job its delay from now, without queueing it', async () => {
  await redis.connection.flushdb();
  const before = Date.now() / 1000;
  const id = await client.performIn(300, 'SlackNotifierWorker', 'signups', null, 'later');
  const score = Number(await redis.connection.zscore('rq:scheduled:slack', id));
  assert.ok(score >= before + 300 && score <= Date.now() / 1000 + 300, String(score));
  assert.equal(await redis.connection.llen('rq:queue:slack'), 0);
});

test('a helper enqueues its worker with the arguments in order', async () => {
  await redis.connection.flushdb();
  const { Emails, Users } = categoriesFor(() => client);
  const id = await Emails.sendIntro(7, 'first');
  const paid = await Users.paySimbiAt(new Date('2030-01-01T00:00:00Z'), 1, 2, 25, 'trade', 'key-1');
  assert.equal(await redis.connection.hget(`rq:job:${id}`, 'simbi_worker'), 'SendIntroWorker');
  assert.equal(await redis.connection.zscore('rq:scheduled:critical', paid), '1893456000');
});

// Never called: each line must fail to compile, or tsc fails on the unused directive.
export function wrongCallsDoNotCompile(args: JsonValue[]): void {
  const { Emails, Slack } = categoriesFor(() => client);
  // @ts-expect-error an unknown worker
  void client.performAsync('SlackNotifierWorkr', 'signups', null, 'hi');
  // @ts-expect-error one argument too few
  void client.performAsync('SlackNotifierWorker', 'signups', 'hi');
  // @ts-expect-error a Date is not JSON
  void client.performAsync('MixpanelTrackWorker', '7', 'event', { when: new Date() });
  // @ts-expect-error no such helper
  void Emails.sendIntroduction(7, 'first');
  // @ts-expect-error a helper with one argument too many
  void Slack.notify('signups', null, 'hi', args);
  // @ts-expect-error performIn takes seconds first
  void client.performIn('SlackNotifierWorker', 'signups', null, 'hi');
}
