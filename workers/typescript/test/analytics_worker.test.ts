import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { insertId } from "../src/analytics_worker";
import { HostError } from "../src/runtime/host";
import type { DoneMessage, JobMessage } from "../src/runtime/protocol";
import { runJob } from "../src/runtime/worker";
import { FakeHost } from "./helpers";

function job(worker: string, args: unknown[], jobId = "job-1"): JobMessage {
  return { type: "job", job_id: jobId, worker, args, attempt: 1 };
}

function assertPermanent(done: DoneMessage, argument: string): void {
  assert.equal(done.error?.class, "PermanentError");
  assert.equal(done.error?.retryable, false);
  assert.match(done.error?.message ?? "", new RegExp(`^${argument} must `));
}

const delivered = () => ({ delivered: "outbox" });

describe("MixpanelTrackWorker", () => {
  test("tracks the event at properties.time with an insert id from the job id", async () => {
    const host = new FakeHost(delivered);
    const args = ["u-42", "Signed Up", { plan: "free", time: 1_700_000_000 }];
    const done = await runJob(job("MixpanelTrackWorker", args, "job-abc"), host);

    const expectedId = insertId("job-abc");
    assert.deepEqual(host.calls, [{ service: "mixpanel", method: "track", params: {
      distinct_id: "u-42", event: "Signed Up", properties: { plan: "free" },
      time: 1_700_000_000, insert_id: expectedId } }]);
    assert.deepEqual(done, { type: "done", job_id: "job-abc", value: { event: "Signed Up",
      time: 1_700_000_000, insert_id: expectedId, delivered: "outbox" } });
  });

  test("the insert id is stable per job id, differs between jobs and suits Mixpanel", () => {
    assert.equal(insertId("job-1"), insertId("job-1"));
    assert.notEqual(insertId("job-1"), insertId("job-2"));
    assert.match(insertId("job-1"), /^[0-9a-f]{32}$/);
    // `printf job-1 | sha256sum`, first 32 digits: the id must not change between releases.
    assert.equal(insertId("job-1"), "026ab639c21df8aa80e5789370a9db1b");
  });

  test("without properties.time it takes now, kept in Redis for the job's retries",
    async () => {
      const host = new FakeHost(delivered);
      const before = Math.floor(Date.now() / 1000);
      await runJob(job("MixpanelTrackWorker", [7, "Login", { time: null, a: 1 }], "j-t"), host);
      const after = Math.floor(Date.now() / 1000);

      const [remember, track] = host.calls;
      const time = track.params.time as number;
      assert.ok(Number.isInteger(time) && time >= before && time <= after, String(time));
      assert.deepEqual(remember, { service: "redis", method: "multi", params: { commands: [
        { command: "SET", keys: ["mixpanel:time:j-t"], args: [time, "NX", "EX", 86400] },
        { command: "GET", keys: ["mixpanel:time:j-t"], args: [] },
      ] } });
      assert.equal(track.params.distinct_id, "7");
      assert.deepEqual(track.params.properties, { a: 1 });
    });

  test("a retry of the same job sends the same time and insert id", async () => {
    const host = new FakeHost(delivered);
    host.redis.strings.set("mixpanel:time:job-r", "1600000000");
    await runJob({ ...job("MixpanelTrackWorker", [7, "Login", null], "job-r"), attempt: 2 }, host);
    const track = host.calls[1];
    assert.equal(track.params.time, 1_600_000_000);
    assert.equal(track.params.insert_id, insertId("job-r"));

    await runJob(job("MixpanelTrackWorker", [7, "Login", null], "job-other"), host);
    assert.notEqual(host.calls[3].params.time, 1_600_000_000);
  });

  test("null properties are sent as an empty object", async () => {
    const host = new FakeHost(delivered);
    await runJob(job("MixpanelTrackWorker", ["u", "Login", null]), host);
    assert.deepEqual(host.calls[1].params.properties, {});
  });

  const badArgs: [string, unknown[]][] = [
    ["distinct_id", ["", "Login", {}]],
    ["distinct_id", [true, "Login", {}]],
    ["distinct_id", [null, "Login", {}]],
    ["event", ["u", "", {}]],
    ["event", ["u", 5, {}]],
    ["properties", ["u", "Login", []]],
    ["properties", ["u", "Login", "plan=free"]],
    ["properties", ["u", "Login", { token: "other-project" }]],
    ["properties.time", ["u", "Login", { time: "yesterday" }]],
    ["properties.time", ["u", "Login", { time: -1 }]],
  ];
  for (const [argument, args] of badArgs) {
    test(`a bad ${argument} (${JSON.stringify(args)}) is permanent and calls nothing`, async () => {
      const host = new FakeHost(delivered);
      const done = await runJob(job("MixpanelTrackWorker", args), host);
      assertPermanent(done, argument);
      assert.deepEqual(host.calls, []);
    });
  }

  test("a host error keeps the host's class and retryable flag", async () => {
    const host = new FakeHost(() => {
      throw new HostError("RateLimited", "429 from Mixpanel", true, 12);
    });
    const done = await runJob(job("MixpanelTrackWorker", ["u", "Login", { time: 5 }]), host);
    assert.equal(done.error?.class, "RateLimited");
    assert.equal(done.error?.retryable, true);
    assert.equal(done.error?.retry_after_seconds, 12);
  });
});

describe("UserEventTrackerWorker", () => {
  const at = "2026-03-01T23:30:00Z";
  const atMs = Date.parse(at);

  test("adds to the user's stream, trims it and counts the day in one batch", async () => {
    const host = new FakeHost();
    const args = [7, "message_sent", { talk_id: 3 }, at];
    const done = await runJob(job("UserEventTrackerWorker", args, "job-e1"), host);

    const member = JSON.stringify({ event: "message_sent", properties: { talk_id: 3 },
      occurred_at: "2026-03-01T23:30:00.000Z", job_id: "job-e1" });
    assert.deepEqual(host.calls, [
      { service: "redis", method: "call",
        params: { command: "GET", keys: ["events:seen:job-e1"], args: [] } },
      { service: "redis", method: "multi", params: { commands: [
        { command: "ZADD", keys: ["events:user:7"], args: [atMs, member] },
        { command: "ZREMRANGEBYRANK", keys: ["events:user:7"], args: [0, -1001] },
        { command: "HINCRBY", keys: ["events:daily:2026-03-01"], args: ["message_sent", 1] },
        { command: "SET", keys: ["events:seen:job-e1"], args: [atMs, "EX", 86400] },
      ] } },
    ]);
    assert.deepEqual(done.value,
      { stored: true, counted: true, occurred_at: "2026-03-01T23:30:00.000Z" });
  });

  test("the daily key is the UTC date of occurred_at, whatever its offset", async () => {
    const host = new FakeHost();
    // 01:30 on 2 March in UTC+02:00 is 23:30 on 1 March in UTC.
    await runJob(job("UserEventTrackerWorker", [7, "login", null, "2026-03-02T01:30:00+02:00"]),
      host);
    assert.deepEqual([...host.redis.hashes.keys()], ["events:daily:2026-03-01"]);
  });

  test("occurred_at may be Unix seconds; a zone-less time is UTC", async () => {
    const seconds = new FakeHost();
    await runJob(job("UserEventTrackerWorker", [7, "login", null, atMs / 1000]), seconds);
    const zoneless = new FakeHost();
    await runJob(job("UserEventTrackerWorker", [7, "login", null, "2026-03-01T23:30"]), zoneless);

    for (const host of [seconds, zoneless]) {
      const zadd = (host.calls[1].params.commands as { args: unknown[] }[])[0];
      assert.equal(zadd.args[0], atMs);
    }
  });

  test("a null occurred_at means now", async () => {
    const host = new FakeHost();
    const before = Date.now();
    await runJob(job("UserEventTrackerWorker", ["u_9", "login", null, null]), host);
    const score = (host.calls[1].params.commands as { args: number[] }[])[0].args[0];
    assert.ok(score >= before && score <= Date.now());
    assert.deepEqual([...host.redis.zsets.keys()], ["events:user:u_9"]);
  });

  test("running the same job twice stores one entry and counts once", async () => {
    const host = new FakeHost();
    const first = await runJob(job("UserEventTrackerWorker", [7, "login", {}, null], "j"), host);
    const second = await runJob(job("UserEventTrackerWorker", [7, "login", {}, null], "j"), host);

    assert.equal(first.value && (first.value as { counted: boolean }).counted, true);
    assert.deepEqual(second.value, { stored: true, counted: false,
      occurred_at: (first.value as { occurred_at: string }).occurred_at });
    assert.equal(host.redis.sorted("events:user:7").length, 1);
    const day = [...host.redis.hashes.values()];
    assert.deepEqual(day.map((hash) => Object.fromEntries(hash)), [{ login: 1 }]);
  });

  test("another job with the same arguments counts again", async () => {
    const host = new FakeHost();
    await runJob(job("UserEventTrackerWorker", [7, "login", {}, at], "j1"), host);
    await runJob(job("UserEventTrackerWorker", [7, "login", {}, at], "j2"), host);
    assert.equal(host.redis.sorted("events:user:7").length, 2);
    assert.equal(host.redis.hashes.get("events:daily:2026-03-01")?.get("login"), 2);
  });

  test("the stream keeps the newest 1000 events", async () => {
    const host = new FakeHost();
    for (let i = 0; i < 1003; i += 1) {
      await runJob(job("UserEventTrackerWorker", [7, "view", null, 1_000_000 + i], `j${i}`), host);
    }
    const stream = host.redis.sorted("events:user:7");
    assert.equal(stream.length, 1000);
    assert.equal(JSON.parse(stream[0]).job_id, "j3");
    assert.equal(JSON.parse(stream[999]).job_id, "j1002");
  });

  const badArgs: [string, unknown[]][] = [
    ["user_id", [0, "login", null, null]],
    ["user_id", ["7:other", "login", null, null]],
    ["user_id", [null, "login", null, null]],
    ["event", [7, "", null, null]],
    ["properties", [7, "login", [1], null]],
    ["occurred_at", [7, "login", null, "yesterday"]],
    ["occurred_at", [7, "login", null, "2026-02-30"]],
    ["occurred_at", [7, "login", null, -5]],
    ["occurred_at", [7, "login", null, true]],
    ["occurred_at", [7, "login", null, {}]],
  ];
  for (const [argument, args] of badArgs) {
    test(`a bad ${argument} (${JSON.stringify(args)}) is permanent and calls nothing`, async () => {
      const host = new FakeHost();
      const done = await runJob(job("UserEventTrackerWorker", args), host);
      assertPermanent(done, argument);
      assert.deepEqual(host.calls, []);
    });
  }
});
