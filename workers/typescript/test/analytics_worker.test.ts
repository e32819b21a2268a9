import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { displayScore, displayScoreParts, insertId } from "../src/analytics_worker";
import { HostError } from "../src/runtime/host";
import type { DoneMessage, JobMessage } from "../src/runtime/protocol";
import { runJob } from "../src/runtime/worker";
import type { RecordedCall } from "./helpers";
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

// The workers below read the database: `answer` plays the db and mixpanel host services.

type Answer = (call: RecordedCall) => unknown;

function dbRows(rows: Record<string, unknown>[], also: Answer = () => null): Answer {
  return (call) => {
    if (call.service === "db" && call.method === "query") return { rows };
    if (call.service === "db" && call.method === "execute") return { rowcount: 1 };
    return also(call);
  };
}

function callsTo(host: FakeHost, service: string): RecordedCall[] {
  return host.calls.filter((call) => call.service === service);
}

const badIds: unknown[] = [0, -3, 1.5, "7", null, true];

describe("MixpanelUpdateUserWorker", () => {
  const ada = { email: "ada@example.org", first_name: "Ada", last_name: "Lovelace",
    created_at: "2026-03-01 10:00:00.000000", tier: "gold", strength: 320,
    simbi_balance: 150, deleted_at: null, services_count: 3 };
  const profile = { $email: "ada@example.org", $first_name: "Ada", $last_name: "Lovelace",
    $created: "2026-03-01T10:00:00", tier: "gold", strength: 320, services_count: 3,
    simbi_balance: 150 };

  test("sets the user's profile, keyed by the user id as a string", async () => {
    const host = new FakeHost(dbRows([ada], delivered));
    const done = await runJob(job("MixpanelUpdateUserWorker", [7]), host);

    assert.deepEqual(callsTo(host, "db")[0].params.params, { user_id: 7 });
    assert.deepEqual(callsTo(host, "mixpanel"), [{ service: "mixpanel", method: "people_set",
      params: { distinct_id: "7", properties: profile } }]);
    assert.deepEqual(done.value, { user_id: 7, properties: profile, delivered: "outbox" });
  });

  test("a PostgreSQL time with an offset becomes $created in UTC", async () => {
    const host = new FakeHost(dbRows([{ ...ada, created_at: "2026-03-01T11:00:00+01:00" }]));
    await runJob(job("MixpanelUpdateUserWorker", [7]), host);
    const properties = callsTo(host, "mixpanel")[0].params.properties as Record<string, unknown>;
    assert.equal(properties.$created, "2026-03-01T10:00:00");
  });

  test("a deleted user is skipped and Mixpanel is not called", async () => {
    const deleted = { ...ada, deleted_at: "2026-03-02 08:00:00" };
    const host = new FakeHost(dbRows([deleted], delivered));
    const done = await runJob(job("MixpanelUpdateUserWorker", [7]), host);
    assert.equal(done.skipped, "user 7 is deleted");
    assert.deepEqual(callsTo(host, "mixpanel"), []);
  });

  test("a missing user is skipped", async () => {
    const host = new FakeHost(dbRows([], delivered));
    const done = await runJob(job("MixpanelUpdateUserWorker", [404]), host);
    assert.equal(done.skipped, "user 404 does not exist");
    assert.deepEqual(callsTo(host, "mixpanel"), []);
  });

  for (const bad of badIds) {
    test(`a user_id of ${JSON.stringify(bad)} is permanent and calls nothing`, async () => {
      const host = new FakeHost(dbRows([ada]));
      assertPermanent(await runJob(job("MixpanelUpdateUserWorker", [bad]), host), "user_id");
      assert.deepEqual(host.calls, []);
    });
  }
});

describe("RecordServiceStatsWorker", () => {
  const today = () => new Date().toISOString().slice(0, 10);
  const stats = (host: FakeHost, key: string) =>
    Object.fromEntries(host.redis.hashes.get(key) ?? new Map());

  test("adds the increment to today's and the total counter of the stat", async () => {
    const host = new FakeHost();
    const done = await runJob(job("RecordServiceStatsWorker", [9, "views", 3]), host);

    const daily = `service_stats:9:${today()}`;
    assert.deepEqual(stats(host, daily), { views: 3 });
    assert.deepEqual(stats(host, "service_stats:9:total"), { views: 3 });
    assert.equal(host.redis.ttls.get(daily), 400 * 86_400);
    assert.equal(host.redis.ttls.get("service_stats:9:total"), undefined);
    assert.deepEqual(done.value,
      { service_id: 9, stat: "views", day: today(), counted: true, daily: 3, total: 3 });
  });

  test("each stat has its own field and jobs add up", async () => {
    const host = new FakeHost();
    await runJob(job("RecordServiceStatsWorker", [9, "views", 3], "j1"), host);
    await runJob(job("RecordServiceStatsWorker", [9, "views", 2], "j2"), host);
    await runJob(job("RecordServiceStatsWorker", [9, "shares", 1], "j3"), host);
    await runJob(job("RecordServiceStatsWorker", [10, "favorites", 1], "j4"), host);

    assert.deepEqual(stats(host, "service_stats:9:total"), { views: 5, shares: 1 });
    assert.deepEqual(stats(host, "service_stats:10:total"), { favorites: 1 });
  });

  test("a retry of the same job counts once", async () => {
    const host = new FakeHost();
    await runJob(job("RecordServiceStatsWorker", [9, "messages", 4], "job-s"), host);
    const again = await runJob(job("RecordServiceStatsWorker", [9, "messages", 4], "job-s"), host);

    assert.deepEqual(again.value,
      { service_id: 9, stat: "messages", day: today(), counted: false });
    assert.deepEqual(stats(host, "service_stats:9:total"), { messages: 4 });
    assert.deepEqual(stats(host, `service_stats:9:${today()}`), { messages: 4 });
  });

  const badArgs: [string, unknown[]][] = [
    ["service_id", [0, "views", 1]],
    ["service_id", ["9", "views", 1]],
    ["stat", [9, "likes", 1]],
    ["stat", [9, "", 1]],
    ["stat", [9, null, 1]],
    ["increment", [9, "views", 0]],
    ["increment", [9, "views", -1]],
    ["increment", [9, "views", 10_001]],
    ["increment", [9, "views", 1.5]],
    ["increment", [9, "views", "3"]],
  ];
  for (const [argument, args] of badArgs) {
    test(`a bad ${argument} (${JSON.stringify(args)}) is permanent and calls nothing`, async () => {
      const host = new FakeHost();
      assertPermanent(await runJob(job("RecordServiceStatsWorker", args), host), argument);
      assert.deepEqual(host.calls, []);
    });
  }

  test("the largest allowed increment is 10000", async () => {
    const host = new FakeHost();
    await runJob(job("RecordServiceStatsWorker", [9, "views", 10_000]), host);
    assert.deepEqual(stats(host, "service_stats:9:total"), { views: 10_000 });
  });
});

describe("ResponseTimeWorker", () => {
  // Talk 3: the other wrote at 10:00:00, the user replied at 10:12:30 (SQLite's format).
  // Talk 4: an hour, in PostgreSQL's format.
  const talks: Record<number, Record<string, unknown>> = {
    3: { talks: 1, asked_at: "2026-03-01 10:00:00.000000",
      replied_at: "2026-03-01 10:12:30.000000" },
    4: { talks: 1, asked_at: "2026-03-02T09:00:00+00:00",
      replied_at: "2026-03-02T10:00:00.000000+00:00" },
    5: { talks: 1, asked_at: "2026-03-02 09:00:00", replied_at: null },
    6: { talks: 1, asked_at: null, replied_at: null },
    7: { talks: 0, asked_at: null, replied_at: null },
  };
  const conversations: Answer = (call) => {
    const params = call.params.params as { talk_id: number };
    return { rows: [talks[params.talk_id]] };
  };
  const hash = (host: FakeHost, key: string) =>
    Object.fromEntries(host.redis.hashes.get(key) ?? new Map());

  test("other wrote at 10:00:00, the user replied at 10:12:30: 750 s", async () => {
    const host = new FakeHost(conversations);
    const done = await runJob(job("ResponseTimeWorker", [7, 3]), host);

    assert.deepEqual(callsTo(host, "db")[0].params.params, { user_id: 7, talk_id: 3 });
    assert.deepEqual(done.value,
      { user_id: 7, talk_id: 3, seconds: 750, counted: true, count: 1, mean_seconds: 750 });
    assert.deepEqual(hash(host, "response_time:7"),
      { sum_seconds: 750, count: 1, "talk:3": 750 });
  });

  test("after two talks the mean is their average: (750 + 3600) / 2 = 2175 s", async () => {
    const host = new FakeHost(conversations);
    await runJob(job("ResponseTimeWorker", [7, 3], "j1"), host);
    const done = await runJob(job("ResponseTimeWorker", [7, 4], "j2"), host);

    assert.deepEqual(done.value,
      { user_id: 7, talk_id: 4, seconds: 3600, counted: true, count: 2, mean_seconds: 2175 });
    assert.deepEqual(hash(host, "response_time:7"),
      { sum_seconds: 4350, count: 2, "talk:3": 750, "talk:4": 3600 });
  });

  test("the same talk again, by a retry or another job, is not counted twice", async () => {
    const host = new FakeHost(conversations);
    await runJob(job("ResponseTimeWorker", [7, 3], "j1"), host);
    const retry = await runJob(job("ResponseTimeWorker", [7, 3], "j1"), host);
    const rerun = await runJob(job("ResponseTimeWorker", [7, 3], "j9"), host);

    const expected =
      { user_id: 7, talk_id: 3, seconds: 750, counted: false, count: 1, mean_seconds: 750 };
    assert.deepEqual(retry.value, expected);
    assert.deepEqual(rerun.value, expected);
    assert.equal(callsTo(host, "db").length, 1);
    assert.deepEqual(hash(host, "response_time:7"),
      { sum_seconds: 750, count: 1, "talk:3": 750 });
  });

  const skips: [number, string][] = [
    [5, "user 7 has not replied in talk 5"],
    [6, "no one but user 7 wrote in talk 6"],
    [7, "talk 7 does not exist"],
  ];
  for (const [talk, reason] of skips) {
    test(`skips: ${reason}`, async () => {
      const host = new FakeHost(conversations);
      const done = await runJob(job("ResponseTimeWorker", [7, talk]), host);
      assert.equal(done.skipped, reason);
      assert.equal(host.redis.hashes.size, 0);
    });
  }

  for (const [argument, args] of [["user_id", [0, 3]], ["talk_id", [7, "3"]]] as const) {
    test(`a bad ${argument} (${JSON.stringify(args)}) is permanent and calls nothing`, async () => {
      const host = new FakeHost(conversations);
      assertPermanent(await runJob(job("ResponseTimeWorker", [...args]), host), argument);
      assert.deepEqual(host.calls, []);
    });
  }
});

describe("DisplayScoreWorker", () => {
  const DAY_MS = 86_400_000;
  const sqliteTime = (ms: number) => new Date(ms).toISOString().replace("T", " ").slice(0, 23);
  const user = (values: Record<string, unknown> = {}) => ({ strength: 350,
    last_seen_at: sqliteTime(Date.now() - 3 * DAY_MS), deleted_at: null, review_count: 2,
    rating_sum: 9, ...values });

  test("ratings 5 and 4, 750 s replies, strength 350, seen 3 days ago: 73", async () => {
    const host = new FakeHost(dbRows([user()]));
    host.redis.hashes.set("response_time:7", new Map([["sum_seconds", 1500], ["count", 2]]));
    const done = await runJob(job("DisplayScoreWorker", [7]), host);

    // 35 x 3.5/4 + 15 x 2/20 + 20 + 15 x 350/700 + 15 x 27/30 = 73.125
    assert.deepEqual(done.value, { user_id: 7, display_score: 73, parts:
      { rating: 30.63, reviews: 1.5, response: 20, strength: 7.5, recency: 13.5 } });
    const update = host.calls.find((call) => call.method === "execute");
    assert.deepEqual(update?.params.params, { score: 73, user_id: 7 });
    assert.equal(host.redis.strings.get("display_score:7"), "73");
    assert.equal(host.redis.ttls.get("display_score:7"), 86_400);
  });

  test("a user with nothing yet scores 0", async () => {
    const host = new FakeHost(dbRows([user({ strength: 0, last_seen_at: null,
      review_count: 0, rating_sum: null })]));
    const done = await runJob(job("DisplayScoreWorker", [7]), host);
    assert.equal((done.value as { display_score: number }).display_score, 0);
    assert.equal(host.redis.strings.get("display_score:7"), "0");
  });

  test("the formula at its bounds", () => {
    const nowMs = Date.parse("2026-03-10T12:00:00Z");
    const best = { ratingSum: 100, reviewCount: 20, meanResponseSeconds: 60, strength: 900,
      lastSeenMs: nowMs, nowMs };
    assert.equal(displayScore(displayScoreParts(best)), 100);

    // Half a day (3600 + 41400 s) is halfway from an hour to a day: 10 of 20.
    const halfDay = displayScoreParts({ ...best, meanResponseSeconds: 45_000 });
    assert.equal(halfDay.response, 10);
    // A day or more, or never measured: 0; seen 30 days ago or more: 0.
    assert.equal(displayScoreParts({ ...best, meanResponseSeconds: 86_400 }).response, 0);
    assert.equal(displayScoreParts({ ...best, meanResponseSeconds: null }).response, 0);
    assert.equal(displayScoreParts({ ...best, lastSeenMs: nowMs - 30 * DAY_MS }).recency, 0);
    // A clock a little ahead of ours counts as seen now, not more.
    assert.equal(displayScoreParts({ ...best, lastSeenMs: nowMs + DAY_MS }).recency, 15);
    // All ones: the rating part is 0; 40 reviews count as 20.
    const ones = displayScoreParts({ ...best, ratingSum: 40, reviewCount: 40 });
    assert.deepEqual([ones.rating, ones.reviews], [0, 15]);
  });

  test("a deleted user is skipped and nothing is stored", async () => {
    const host = new FakeHost(dbRows([user({ deleted_at: "2026-03-02T08:00:00+00:00" })]));
    const done = await runJob(job("DisplayScoreWorker", [7]), host);
    assert.equal(done.skipped, "user 7 is deleted");
    assert.equal(host.calls.some((call) => call.method === "execute"), false);
    assert.equal(host.redis.strings.size, 0);
  });

  test("a missing user is skipped", async () => {
    const host = new FakeHost(dbRows([]));
    const done = await runJob(job("DisplayScoreWorker", [8]), host);
    assert.equal(done.skipped, "user 8 does not exist");
  });

  for (const bad of badIds) {
    test(`a user_id of ${JSON.stringify(bad)} is permanent and calls nothing`, async () => {
      const host = new FakeHost(dbRows([user()]));
      assertPermanent(await runJob(job("DisplayScoreWorker", [bad]), host), "user_id");
      assert.deepEqual(host.calls, []);
    });
  }
});

describe("RemoveUserEventsWorker", () => {
  const DAY_MS = 86_400_000;
  const stream = (host: FakeHost, key: string, ages: number[]) => {
    const now = Date.now();
    host.redis.zsets.set(key, new Map(ages.map((days, i) => [`e${i}`, now - days * DAY_MS])));
  };

  test("removes the events older than 90 days and drops the streams it emptied", async () => {
    const host = new FakeHost();
    stream(host, "events:user:1", [91, 200, 89, 1]);
    stream(host, "events:user:2", [95, 120]);
    stream(host, "events:user:3", [10]);
    // Not a user stream, and not a sorted set: both left alone.
    stream(host, "leaderboard:weekly", [400]);
    host.redis.hashes.set("events:user:9", new Map([["old", 1]]));

    const done = await runJob(job("RemoveUserEventsWorker", []), host);

    const value = done.value as Record<string, unknown>;
    assert.deepEqual({ ...value, cutoff: undefined },
      { removed: 4, streams_seen: 3, streams_dropped: 1, cutoff: undefined });
    assert.deepEqual(host.redis.sorted("events:user:1"), ["e2", "e3"]);
    assert.equal(host.redis.zsets.has("events:user:2"), false);
    assert.deepEqual(host.redis.sorted("events:user:3"), ["e0"]);
    assert.equal(host.redis.sorted("leaderboard:weekly").length, 1);
    assert.ok(host.redis.hashes.has("events:user:9"));
    const cutoffMs = Date.parse(value.cutoff as string);
    assert.ok(Math.abs(cutoffMs - (Date.now() - 90 * DAY_MS)) < 5_000);
  });

  test("works through many streams in SCAN batches of 500", async () => {
    const host = new FakeHost();
    for (let user = 1; user <= 1_200; user += 1) stream(host, `events:user:${user}`, [100]);

    const done = await runJob(job("RemoveUserEventsWorker", []), host);

    const value = done.value as Record<string, unknown>;
    assert.deepEqual([value.removed, value.streams_seen, value.streams_dropped],
      [1_200, 1_200, 1_200]);
    const scans = host.calls.filter((call) => call.params.command === "SCAN");
    assert.equal(scans.length, 3);
    assert.deepEqual(scans[0].params.args,
      ["0", "MATCH", "events:user:*", "COUNT", 500, "TYPE", "zset"]);
    assert.equal(host.redis.zsets.size, 0);
  });

  test("with no streams it removes nothing", async () => {
    const done = await runJob(job("RemoveUserEventsWorker", []), new FakeHost());
    const value = done.value as Record<string, unknown>;
    assert.deepEqual([value.removed, value.streams_seen, value.streams_dropped], [0, 0, 0]);
  });
});
