/**
 * Enqueue jobs by worker name, as the Python client does and through the same Lua script:
 * performAsync, performIn, performAt, performBulk, and set({ uniqueSeconds }) for one call.
 * Every call is checked before anything reaches Redis.
 */
import type { Redis } from 'ioredis';

import { type Catalog, loadCatalog, type WorkerSpec } from './catalog.js';
import {
  argumentList,
  checkArguments,
  checkDelay,
  checkUniqueSeconds,
  epochSeconds,
  findWorker,
} from './check.js';
import { connect, runEnqueue } from './connection.js';
import type { JsonValue } from './json.js';
import { readSettings, type Settings } from './settings.js';
import { jobFields, newId, rqNow, uniqueLock } from './wire.js';
import type { WorkerArgs } from './workers.generated.js';

const BULK_CHUNK = 1000; // jobs per enqueue.lua call, as in the Python client

/** Worker name -> argument tuple; WorkerArgs (from queues.yaml) unless told otherwise. */
export type ArgsTable<A> = { [K in keyof A]: JsonValue[] };

export interface ClientOptions {
  /** an ioredis connection to use; close() leaves it open */
  redis?: Redis;
  /** default: REDIS_URL, else the local Redis of `simbi-workers start` under var/ */
  redisUrl?: string;
  /** default: SIMBI_CLIENT_CATALOG, else clients/catalog.json */
  catalogFile?: string;
  /** where SIMBI_* settings and REDIS_URL are read; default process.env */
  env?: NodeJS.ProcessEnv;
}

export interface CallOptions {
  /** a unique window for this call, over the worker's own (queues.yaml `unique`) */
  uniqueSeconds?: number;
}

interface Job {
  id: string;
  lock: string;
  fields: Array<string | Buffer>;
}

export class Client<A extends ArgsTable<A> = WorkerArgs> {
  readonly catalog: Catalog;
  readonly settings: Settings;
  private connection: Redis | undefined;
  private readonly ownsConnection: boolean;

  constructor(private readonly options: ClientOptions = {}) {
    const env = options.env ?? process.env;
    this.catalog = loadCatalog(options.catalogFile || env['SIMBI_CLIENT_CATALOG'] || undefined);
    this.settings = readSettings(this.catalog.settings, env);
    this.connection = options.redis;
    this.ownsConnection = !options.redis;
  }

  /** Options for the next calls, Sidekiq's `Worker.set(...)`. */
  set(options: CallOptions): Scoped<A> {
    checkUniqueSeconds(options.uniqueSeconds);
    return new Scoped(this, options.uniqueSeconds);
  }

  performAsync<W extends keyof A & string>(worker: W, ...args: A[W]): Promise<string> {
    return this.set({}).performAsync(worker, ...args);
  }

  performIn<W extends keyof A & string>(
    seconds: number,
    worker: W,
    ...args: A[W]
  ): Promise<string> {
    return this.set({}).performIn(seconds, worker, ...args);
  }

  performAt<W extends keyof A & string>(
    when: Date | number,
    worker: W,
    ...args: A[W]
  ): Promise<string> {
    return this.set({}).performAt(when, worker, ...args);
  }

  performBulk<W extends keyof A & string>(worker: W, argsList: Array<A[W]>): Promise<string[]> {
    return this.set({}).performBulk(worker, argsList);
  }

  /** Close the connection this client opened (not one passed in as `redis`). */
  async close(): Promise<void> {
    if (this.connection && this.ownsConnection) await this.connection.quit();
    this.connection = undefined;
  }

  /** @internal Check every job, then write them in chunks of BULK_CHUNK. */
  async enqueue(
    worker: string,
    batches: unknown[][],
    runAt: number | null,
    uniqueSeconds?: number,
  ): Promise<string[]> {
    const spec = findWorker(this.catalog, worker);
    const window = uniqueSeconds || spec.unique || null;
    batches.forEach((args) => checkArguments(spec, args, this.settings.maxPayloadBytes));

    const ids: string[] = [];
    for (let start = 0; start < batches.length; start += BULK_CHUNK) {
      const chunk = batches.slice(start, start + BULK_CHUNK) as JsonValue[][];
      ids.push(...(await this.writeChunk(spec, chunk, runAt, window)));
    }
    return ids;
  }

  private async writeChunk(
    spec: WorkerSpec,
    chunk: JsonValue[][],
    runAt: number | null,
    window: number | null,
  ): Promise<string[]> {
    const now = rqNow();
    const jobs: Job[] = chunk.map((args) => ({
      id: newId(),
      lock: window ? uniqueLock(spec.name, args) : '',
      fields: jobFields(spec, args, now, this.settings),
    }));
    const head = [
      spec.queue,
      runAt === null ? '' : String(runAt),
      window ? String(window) : '',
      now,
    ];
    const argv = [
      ...head,
      String(jobs[0]!.fields.length / 2),
      ...jobs.flatMap((job) => [job.id, job.lock, ...job.fields]),
    ];
    return runEnqueue(this.redis(), argv);
  }

  // Connected on first use, so a bad call is refused even when Redis is down.
  private redis(): Redis {
    this.connection ??= connect(this.options.redisUrl, this.options.env ?? process.env);
    return this.connection;
  }
}

/** A client with per-call options; see Client.set. */
export class Scoped<A extends ArgsTable<A>> {
  constructor(
    private readonly client: Client<A>,
    private readonly uniqueSeconds: number | undefined,
  ) {}

  async performAsync<W extends keyof A & string>(worker: W, ...args: A[W]): Promise<string> {
    return (await this.client.enqueue(worker, [args], null, this.uniqueSeconds))[0]!;
  }

  async performIn<W extends keyof A & string>(
    seconds: number,
    worker: W,
    ...args: A[W]
  ): Promise<string> {
    checkDelay(seconds);
    const runAt = Date.now() / 1000 + seconds;
    return (await this.client.enqueue(worker, [args], runAt, this.uniqueSeconds))[0]!;
  }

  async performAt<W extends keyof A & string>(
    when: Date | number,
    worker: W,
    ...args: A[W]
  ): Promise<string> {
    const runAt = epochSeconds(when);
    return (await this.client.enqueue(worker, [args], runAt, this.uniqueSeconds))[0]!;
  }

  async performBulk<W extends keyof A & string>(
    worker: W,
    argsList: Array<A[W]>,
  ): Promise<string[]> {
    // Inside async, so that a refused row rejects the promise as every other refusal does.
    const batches = argsList.map((row, index) => argumentList(worker, index, row));
    return this.client.enqueue(worker, batches, null, this.uniqueSeconds);
  }
}
