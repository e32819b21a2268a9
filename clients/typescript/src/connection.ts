/**
 * Reaching Redis as the Python side does: REDIS_URL when set, else the local Redis that
 * `simbi-workers start` runs on a unix socket under var/ (SIMBI_VAR_DIR).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';

import { Redis } from 'ioredis';

import { REPO_ROOT } from './catalog.js';
import { ClientSetupError } from './errors.js';

// The one copy of the enqueue script, shared with the Python and Ruby clients.
const ENQUEUE_LUA = path.join(REPO_ROOT, 'simbi_workers', 'lua', 'enqueue.lua');

export function connect(url: string | undefined, env: NodeJS.ProcessEnv): Redis {
  const target = url || env['REDIS_URL'];
  if (target)
    return target.startsWith('unix://')
      ? new Redis({ path: target.slice('unix://'.length) })
      : new Redis(target);

  const varDir = env['SIMBI_VAR_DIR']
    ? path.resolve(env['SIMBI_VAR_DIR'])
    : path.join(REPO_ROOT, 'var');
  const socket = path.join(varDir, 'redis', 'redis.sock');
  if (!existsSync(socket)) {
    throw new ClientSetupError(
      `REDIS_URL is not set and no local Redis is running at ${socket}: ` +
        'run `simbi-workers start` (it starts one), or set REDIS_URL',
    );
  }
  return new Redis({ path: socket });
}

let script: { source: string; sha: string } | undefined;

function enqueueScript(): { source: string; sha: string } {
  if (!script) {
    let source: string;
    try {
      source = readFileSync(ENQUEUE_LUA, 'utf8');
    } catch (error) {
      throw new ClientSetupError(
        `${ENQUEUE_LUA}: cannot read the enqueue script (${(error as Error).message})`,
      );
    }
    script = { source, sha: createHash('sha1').update(source).digest('hex') };
  }
  return script;
}

/** Run enqueue.lua: EVALSHA, and EVAL once when this Redis has not seen the script yet. */
export async function runEnqueue(redis: Redis, argv: Array<string | Buffer>): Promise<string[]> {
  const { source, sha } = enqueueScript();
  try {
    return (await redis.evalsha(sha, 0, ...argv)) as string[];
  } catch (error) {
    if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
    return (await redis.eval(source, 0, ...argv)) as string[];
  }
}
