/**
 * simbi-workers from Node. The module-level functions and helpers use one default client
 * (REDIS_URL, clients/catalog.json), opened on first use; `closeDefaultClient()` lets the
 * process exit.
 *
 *   import { performAsync, Emails } from 'simbi-workers-client';
 *   await performAsync('SlackNotifierWorker', 'signups', 7, 'Ada joined');
 *   await Emails.sendIntro(7, 'first');
 */
import { Client } from './client.js';
import { categoriesFor } from './helpers.js';
import type { WorkerArgs, WorkerName } from './workers.generated.js';

export { Client, Scoped, type ArgsTable, type CallOptions, type ClientOptions } from './client.js';
export { ClientSetupError, JobInputError, SimbiClientError } from './errors.js';
export { categoriesFor, helpers, type Categories, type Helpers } from './helpers.js';
export type { JsonValue } from './json.js';
export { CATEGORIES, type WorkerArgs, type WorkerName } from './workers.generated.js';

let defaultClient: Client | undefined;

export function getDefaultClient(): Client {
  defaultClient ??= new Client();
  return defaultClient;
}

export async function closeDefaultClient(): Promise<void> {
  await defaultClient?.close();
  defaultClient = undefined;
}

export function performAsync<W extends WorkerName>(
  worker: W,
  ...args: WorkerArgs[W]
): Promise<string> {
  return getDefaultClient().performAsync(worker, ...args);
}

export function performIn<W extends WorkerName>(
  seconds: number,
  worker: W,
  ...args: WorkerArgs[W]
): Promise<string> {
  return getDefaultClient().performIn(seconds, worker, ...args);
}

export function performAt<W extends WorkerName>(
  when: Date | number,
  worker: W,
  ...args: WorkerArgs[W]
): Promise<string> {
  return getDefaultClient().performAt(when, worker, ...args);
}

export function performBulk<W extends WorkerName>(
  worker: W,
  argsList: Array<WorkerArgs[W]>,
): Promise<string[]> {
  return getDefaultClient().performBulk(worker, argsList);
}

export const { Emails, Notifications, Slack, Images, Analytics, Scores, Users, Search } =
  categoriesFor(getDefaultClient);
