// The Node child: `node workers/typescript/dist/src/main.js`. Loads the workers, says
// `ready`, then runs `job` messages one at a time until stdin ends (docs/protocol.md).

import { ChannelHost } from "./runtime/host";
import type { Channel, DoneMessage, InboundMessage, JobMessage } from "./runtime/protocol";
import { PROTOCOL_VERSION, StdioChannel, jobProblem, redirectConsole } from "./runtime/protocol";
import { PermanentError, errorPayload, runJob, workerNames } from "./runtime/worker";

// The production worker modules; each registers its workers with defineWorker.
const WORKER_MODULES = [
  "./analytics_worker",
  "./score_worker",
  "./user_worker",
  "./social_worker",
  "./search_worker",
];

// Test-only: comma-separated absolute paths of compiled worker modules to load as well.
// The host never sets it (children get a clean environment), so production lists stay exact.
const EXTRA_WORKERS_ENV = "SIMBI_NODE_EXTRA_WORKERS";

function loadWorkers(): void {
  const extra = (process.env[EXTRA_WORKERS_ENV] ?? "").split(",").filter((p) => p !== "");
  for (const path of extra) {
    if (!path.startsWith("/")) throw new Error(`${EXTRA_WORKERS_ENV}: not absolute: ${path}`);
  }
  for (const path of [...WORKER_MODULES, ...extra]) require(path);
}

function readyMessage(): object {
  return {
    type: "ready",
    protocol: PROTOCOL_VERSION,
    runtime: "node",
    version: process.versions.node,
    pid: process.pid,
    workers: workerNames(),
  };
}

async function handleJob(channel: Channel, message: InboundMessage): Promise<DoneMessage> {
  if (typeof message.job_id !== "string" || message.job_id === "") {
    channel.fail(`a job without a job_id: ${JSON.stringify(message).slice(0, 200)}`);
  }
  const problem = jobProblem(message);
  if (problem !== null) {
    const error = errorPayload(new PermanentError(`malformed job message: ${problem}`));
    return { type: "done", job_id: message.job_id, error };
  }
  const host = new ChannelHost(channel, message.job_id);
  const done = await runJob(message as unknown as JobMessage, host);
  await host.close();
  return done;
}

function sendDone(channel: Channel, done: DoneMessage): void {
  try {
    channel.send(done);
  } catch (err) {
    // The value could not be encoded as JSON (a BigInt, a cycle): nothing was written yet.
    const error = errorPayload(new PermanentError(`the result is not JSON: ${String(err)}`));
    channel.send({ type: "done", job_id: done.job_id, error });
  }
}

async function serve(channel: Channel): Promise<void> {
  for (;;) {
    const message = await channel.receive();
    if (message === null) return;
    if (message.type !== "job") channel.fail(`expected a "job" message, got "${message.type}"`);
    sendDone(channel, await handleJob(channel, message));
  }
}

async function main(): Promise<void> {
  redirectConsole();
  try {
    loadWorkers();
  } catch (err) {
    // No `ready`: the host reports this stderr text and the exit status.
    const detail = err instanceof Error ? err.stack ?? err.message : String(err);
    process.stderr.write(`cannot load the node workers: ${detail}\n`);
    process.exit(1);
  }
  const channel = new StdioChannel(process.stdin, process.stdout);
  channel.send(readyMessage());
  await serve(channel);
  // End of input: exit 0 once stdout is flushed, even if a worker left a timer running.
  process.stdout.write("", () => process.exit(0));
}

void main();
