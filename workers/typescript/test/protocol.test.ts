// The compiled child, spawned for real and driven over its pipes (docs/protocol.md).

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { insertId } from "../src/analytics_worker";
import { Child, FAILING_WORKERS } from "./helpers";
import type { Message } from "./helpers";

// queues.yaml's node workers; the host's start-up check holds the two lists together.
const PRODUCTION_WORKERS = ["DestroyUserWorker", "DisplayScoreWorker", "FriendNewListingWorker",
  "MixpanelTrackWorker", "MixpanelUpdateUserWorker", "NotifyLeaderboardWorker",
  "PayingSimbiWorker", "QuicksterWorker", "RecalculateStrengthWorker",
  "RecordServiceStatsWorker", "RemoveUserEventsWorker", "ResponseTimeWorker",
  "ScoreQueryProcessorWorker", "ScoreWorker", "SearchBulkIndexWorker", "SearchIndexWorker",
  "SearchRemoveWorker", "SocialFriendsWorker", "UpdateRatingWorker", "UserEventTrackerWorker"];
const TEST_WORKER_NAMES = ["BigIntWorker", "EchoWorker", "HostCallWorker", "NoisyWorker",
  "ParallelCallsWorker", "SkipWorker", "ThrowWorker"];
const options = { timeout: 15_000 };

const children: Child[] = [];
after(() => children.forEach((child) => child.kill()));

async function started(extraWorkers?: string | null): Promise<Child> {
  const child = new Child(extraWorkers);
  children.push(child);
  const ready = await child.next();
  assert.equal(ready?.type, "ready", `no ready; stderr: ${child.stderr}`);
  return child;
}

function jobMessage(jobId: string, worker: string, args: unknown[]): Message {
  return { type: "job", job_id: jobId, worker, args, attempt: 1, queue: "default",
    timeout_seconds: 60, deadline_ms: Date.now() + 60_000 };
}

async function runJob(child: Child, jobId: string, worker: string, args: unknown[]) {
  child.send(jobMessage(jobId, worker, args));
  return child.next();
}

describe("start and stop", () => {
  test("ready names the protocol, runtime, version, pid and exactly the production workers",
    options, async () => {
      const child = new Child(null);
      children.push(child);
      const ready = await child.next();
      assert.deepEqual(ready, { type: "ready", protocol: 1, runtime: "node",
        version: process.versions.node, pid: child.proc.pid, workers: PRODUCTION_WORKERS });

      assert.equal(await child.finish(), 0);
      assert.equal(await child.next(), null);
    });

  test("extra worker modules join the sorted list", options, async () => {
    const child = new Child();
    children.push(child);
    const ready = await child.next();
    assert.deepEqual(ready?.workers, [...PRODUCTION_WORKERS, ...TEST_WORKER_NAMES].sort());
  });

  test("a worker module that fails to load: stderr says why, exit 1, no ready",
    options, async () => {
      const child = new Child(FAILING_WORKERS);
      children.push(child);
      assert.equal(await child.exited(), 1);
      assert.equal(await child.next(), null);
      assert.match(child.stderr, /cannot load the node workers: .*failed to load on purpose/);
    });

  test("a relative extra worker path is refused", options, async () => {
    const child = new Child("dist/test/fixtures/test_workers.js");
    children.push(child);
    assert.equal(await child.exited(), 1);
    assert.match(child.stderr, /SIMBI_NODE_EXTRA_WORKERS: not absolute/);
  });

  test("end of input during a host call fails that job, then the child exits 0",
    options, async () => {
      const child = await started();
      child.send(jobMessage("job-eof", "HostCallWorker", ["slack", "post", {}]));
      assert.equal((await child.next())?.type, "call");
      const exit = child.finish();
      const done = await child.next();
      assert.deepEqual([done?.job_id, done?.error.message, done?.error.retryable],
        ["job-eof", "the host closed stdin before replying to slack.post", true]);
      assert.equal(await exit, 0);
    });

  test("a line from the host that is not JSON ends the child with exit 1", options,
    async () => {
      const child = await started();
      child.sendRaw("hello\n");
      assert.equal(await child.exited(), 1);
      assert.match(child.stderr, /protocol error: the host sent a line that is not JSON/);
    });
});

describe("jobs", () => {
  test("MixpanelTrackWorker calls the host and reports the value", options, async () => {
    const child = await started();
    child.send(jobMessage("job-m", "MixpanelTrackWorker", ["u1", "Login", { time: 1234 }]));

    const call = await child.next();
    assert.deepEqual(call, { type: "call", call_id: 1, job_id: "job-m", service: "mixpanel",
      method: "track", params: { distinct_id: "u1", event: "Login", properties: {},
        time: 1234, insert_id: insertId("job-m") } });
    child.send({ type: "reply", call_id: 1, value: { delivered: "outbox" } });

    assert.deepEqual(await child.next(), { type: "done", job_id: "job-m", value: {
      event: "Login", time: 1234, insert_id: insertId("job-m"), delivered: "outbox" } });
  });

  test("UserEventTrackerWorker makes two calls; call ids keep rising across jobs",
    options, async () => {
      const child = await started();
      for (const [jobId, firstCallId] of [["e1", 1], ["e2", 3]] as const) {
        child.send(jobMessage(jobId, "UserEventTrackerWorker", [7, "login", null, 1_000]));
        const get = await child.next();
        assert.deepEqual([get?.call_id, get?.method, get?.params.command],
          [firstCallId, "call", "GET"]);
        child.send({ type: "reply", call_id: firstCallId, value: null });
        const multi = await child.next();
        assert.deepEqual([multi?.call_id, multi?.method], [firstCallId + 1, "multi"]);
        child.send({ type: "reply", call_id: firstCallId + 1, value: [1, 0, 1, "OK"] });
        assert.deepEqual(await child.next(), { type: "done", job_id: jobId,
          value: { stored: true, counted: true, occurred_at: "1970-01-01T00:16:40.000Z" } });
      }
    });

  test("a permanent error names the argument and is not retryable", options, async () => {
    const child = await started();
    const done = await runJob(child, "job-p", "MixpanelTrackWorker", ["u1", "", null]);
    assert.equal(done?.job_id, "job-p");
    assert.equal(done?.error.class, "PermanentError");
    assert.equal(done?.error.message, 'event must be a non-empty string, received ""');
    assert.equal(done?.error.retryable, false);
    assert.equal(done?.error.retry_after_seconds, null);
    assert.ok(done?.error.backtrace.length > 0);
    assert.ok(done?.error.backtrace.every((line: unknown) => typeof line === "string"));
    assert.equal("value" in (done ?? {}), false);
  });

  test("the wrong number of arguments is permanent and says what was expected",
    options, async () => {
      const child = await started();
      const done = await runJob(child, "job-a", "MixpanelTrackWorker", ["u1", "Login"]);
      assert.equal(done?.error.class, "PermanentError");
      assert.equal(done?.error.message, "MixpanelTrackWorker expects 3 arguments, received 2");
      assert.equal(done?.error.retryable, false);
    });

  test("an unknown worker is permanent and named", options, async () => {
    const child = await started(null);
    const done = await runJob(child, "job-u", "NoSuchWorker", []);
    assert.equal(done?.error.class, "PermanentError");
    assert.equal(done?.error.message, "unknown worker NoSuchWorker (this node child serves: "
      + `${PRODUCTION_WORKERS.join(", ")})`);
    assert.equal(done?.error.retryable, false);
  });

  test("thrown errors: class, retryable flag and retry_after_seconds", options, async () => {
    const child = await started();
    const cases: [string, string, boolean, number | null][] = [
      ["permanent", "PermanentError", false, null],
      ["host", "RateLimited", true, 30],
      ["string", "Error", true, null],
      ["type", "TypeError", true, null],
    ];
    for (const [kind, className, retryable, retryAfter] of cases) {
      const done = await runJob(child, `job-${kind}`, "ThrowWorker", [kind]);
      assert.deepEqual([done?.error.class, done?.error.retryable,
        done?.error.retry_after_seconds], [className, retryable, retryAfter], kind);
    }
  });

  test("an error reply raises a HostError that keeps the host's fields", options, async () => {
    const child = await started();
    child.send(jobMessage("job-h", "HostCallWorker", ["slack", "post", { channel: "x" }]));
    const call = await child.next();
    child.send({ type: "reply", call_id: call?.call_id, error: { class: "UnknownChannel",
      message: "unknown Slack channel 'x'", retryable: false } });
    const done = await child.next();
    assert.deepEqual([done?.error.class, done?.error.message, done?.error.retryable],
      ["UnknownChannel", "unknown Slack channel 'x'", false]);
  });

  test("a skipped job is done with a null value and the reason", options, async () => {
    const child = await started();
    const done = await runJob(child, "job-s", "SkipWorker", ["user 7 is deleted"]);
    assert.deepEqual(done, { type: "done", job_id: "job-s", value: null,
      skipped: "user 7 is deleted" });
  });

  test("a result JSON cannot hold fails the job instead of the child", options, async () => {
    const child = await started();
    const done = await runJob(child, "job-b", "BigIntWorker", []);
    assert.equal(done?.error.class, "PermanentError");
    assert.match(done?.error.message, /^the result is not JSON: TypeError/);
    assert.deepEqual(await runJob(child, "job-next", "EchoWorker", [1]),
      { type: "done", job_id: "job-next", value: 1 });
  });

  test("calls made together still go out one at a time", options, async () => {
    const child = await started();
    child.send(jobMessage("job-c", "ParallelCallsWorker", []));
    const first = await child.next();
    assert.equal(first?.method, "first");
    const pending = child.next();
    const early = await Promise.race([pending, delay(200).then(() => "nothing yet")]);
    assert.equal(early, "nothing yet", "a second call went out before the first reply");
    child.send({ type: "reply", call_id: first?.call_id, value: "one" });
    const second = await pending;
    assert.deepEqual([second?.method, second?.call_id], ["second", first?.call_id + 1]);
    child.send({ type: "reply", call_id: second?.call_id, value: "two" });
    assert.deepEqual((await child.next())?.value, ["one", "two"]);
  });

  test("console output and ctx.log go to stderr, never stdout", options, async () => {
    const child = await started();
    const done = await runJob(child, "job-n", "NoisyWorker", []);
    assert.deepEqual(done, { type: "done", job_id: "job-n", value: "quiet" });
    assert.equal(await child.finish(), 0);
    for (const word of ["log", "info", "warn", "debug"]) {
      assert.ok(child.stderr.includes(`stray ${word}\n`), word);
    }
    assert.ok(child.stderr.includes("[NoisyWorker job-n] working\n"));
  });
});

describe("large messages", () => {
  // Multi-byte characters make chunk boundaries fall inside UTF-8 sequences.
  const big = "é€😀x".repeat(150_000);

  test("a string argument over 1 MB comes back unchanged", options, async () => {
    assert.ok(Buffer.byteLength(big) > 1_000_000);
    const child = await started();
    const done = await runJob(child, "job-big", "EchoWorker", [big]);
    assert.equal(done?.value.length, big.length);
    assert.equal(done?.value, big);
  });

  test("a reply over 1 MB reaches the worker", options, async () => {
    const child = await started();
    child.send(jobMessage("job-big-reply", "HostCallWorker", ["storage", "get", { key: "k" }]));
    const call = await child.next();
    child.send({ type: "reply", call_id: call?.call_id, value: { data_base64: big } });
    assert.equal((await child.next())?.value.data_base64, big);
  });
});
