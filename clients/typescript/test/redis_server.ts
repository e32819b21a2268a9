/** A real redis-server on a free loopback port for one test file. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';

import { Redis } from 'ioredis';

export interface TestRedis {
  url: string;
  connection: Redis;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const server: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}/0`;
  const connection = new Redis(url, { retryStrategy: (times) => (times > 100 ? null : 20) });
  await connection.ping();
  return {
    url,
    connection,
    async stop() {
      await connection.quit();
      server.kill('SIGTERM');
    },
  };
}
