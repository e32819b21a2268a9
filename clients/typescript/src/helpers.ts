/**
 * One helper per worker, grouped as app code thinks of them, in camelCase:
 * `Emails.sendIntro(userId, 'first')`, `Emails.sendIntroIn(3600, userId, 'second')`,
 * `Users.paySimbiAt(date, fromId, toId, 25, 'trade', key)`. The table is generated from
 * simbi_workers/helpers.py (CATEGORIES), and the argument types from queues.yaml, so a
 * helper that does not exist or a wrong argument count fails to compile.
 */
import type { Client } from './client.js';
import type { JsonValue } from './json.js';
import { CATEGORIES, type WorkerArgs, type WorkerName } from './workers.generated.js';

type Table = Readonly<Record<string, WorkerName>>;

export type Helpers<T extends Table> = {
  [K in keyof T]: (...args: WorkerArgs[T[K]]) => Promise<string>;
} & {
  [K in keyof T as `${K & string}In`]: (
    seconds: number,
    ...args: WorkerArgs[T[K]]
  ) => Promise<string>;
} & {
  [K in keyof T as `${K & string}At`]: (
    when: Date | number,
    ...args: WorkerArgs[T[K]]
  ) => Promise<string>;
};

type AnyCall = (...args: never[]) => Promise<string>;
type Untyped = Client<Record<string, JsonValue[]>>;

/** The helpers of one category, calling the client `client()` returns at call time. */
export function helpers<T extends Table>(table: T, client: () => Client): Helpers<T> {
  const namespace: Record<string, AnyCall> = {};
  for (const [method, worker] of Object.entries(table)) {
    // The types above check each call; inside, the worker is one name of the table.
    const untyped = () => client() as unknown as Untyped;
    namespace[method] = (...args: JsonValue[]) => untyped().performAsync(worker, ...args);
    namespace[`${method}In`] = (seconds: number, ...args: JsonValue[]) =>
      untyped().performIn(seconds, worker, ...args);
    namespace[`${method}At`] = (when: Date | number, ...args: JsonValue[]) =>
      untyped().performAt(when, worker, ...args);
  }
  return namespace as unknown as Helpers<T>;
}

export type Categories = { [C in keyof typeof CATEGORIES]: Helpers<(typeof CATEGORIES)[C]> };

/** Every category bound to one client: `const { Emails, Users } = categoriesFor(client)`. */
export function categoriesFor(client: () => Client): Categories {
  const entries = Object.entries(CATEGORIES).map(([name, table]) => [name, helpers(table, client)]);
  return Object.fromEntries(entries) as Categories;
}
