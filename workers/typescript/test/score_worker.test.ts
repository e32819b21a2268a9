import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { DoneMessage, JobMessage } from "../src/runtime/protocol";
import { runJob } from "../src/runtime/worker";
import { mean2, normalTime, sqlTime } from "../src/score_metrics";
import { SCORE_BATCH_SIZE, strengthOf, tierFor } from "../src/score_worker";
import type { RecordedCall } from "./helpers";
import { FakeHost } from "./helpers";

type Row = Record<string, unknown>;
// The rows a db.query returns, chosen by a piece of its SQL and its parameters.
type Tables = [string, (params: Row) => Row[]][];

function job(worker: string, args: unknown[]): JobMessage {
  return { type: "job", job_id: "job-1", worker, args, attempt: 1 };
}

/** A host whose db answers from `tables`, whose executes touch `rowcount` rows. */
function dbHost(tables: Tables, rowcount = 1): FakeHost {
  return new FakeHost((call: RecordedCall) => {
    if (call.service === "jobs") return { job_id: `job-${call.params.worker}` };
    if (call.method === "execute") return { rowcount };
    const sql = String(call.params.sql);
    const found = tables.find(([fragment]) => sql.includes(fragment));
    if (found === undefined) throw new Error(`no rows for ${sql}`);
    return { rows: found[1](call.params.params as Row) };
  });
}

function calls(host: FakeHost, service: string, method: string): RecordedCall[] {
  return host.calls.filter((call) => call.service === service && call.method === method);
}

function enqueued(host: FakeHost): unknown[][] {
  return calls(host, "jobs", "enqueue").map((call) => [call.params.worker, call.params.args]);
}

function assertPermanent(done: DoneMessage, message: string): void {
  assert.equal(done.error?.class, "PermanentError", JSON.stringify(done));
  assert.equal(done.error?.retryable, false);
  assert.equal(done.error?.message, message);
}

const userFormula = (weights: unknown, lastRunAt: unknown = null): Tables[number] =>
  ["FROM score_formulas", () => [{ id: 1, name: "trust", subject_type: "user",
    weights: JSON.stringify(weights), last_run_at: lastRunAt }]];
const ada = { id: 7, strength: 150, simbi_balance: 40, display_score: 0, services_count: 2,
  review_count: 3, rating_total: 13, followers_count: 4 };

describe("ScoreWorker", () => {
  test("a user's score is the weighted sum of their metrics, upserted and returned",
    async () => {
      const weights = { strength: 2, rating_average: 10, followers_count: 0.5 };
      const host = dbHost([userFormula(weights), ["FROM users subject", () => [ada]]]);
      const done = await runJob(job("ScoreWorker", [7, "user", 1]), host);

      // 2 * 150 + 10 * 4.33 (13 / 3 to two decimals) + 0.5 * 4
      assert.equal(done.value, 345.3);
      const [upsert] = calls(host, "db", "execute");
      assert.match(String(upsert.params.sql),
        /ON CONFLICT \(subject_type, subject_id, formula_id\) DO UPDATE SET value = excluded/);
      const params = upsert.params.params as Row;
      assert.deepEqual({ ...params, computed_at: null }, { subject_type: "user", formula_id: 1,
        id0: 7, value0: 345.3, computed_at: null });
    });

  test("a service's score weighs its rating, price, favorites and comments", async () => {
    const weights = { rating_average: 2, price: 0.1, favorites_count: 1, comments_count: 3 };
    const formula: Tables[number] = ["FROM score_formulas", () => [{ id: 2, name: "hot",
      subject_type: "service", weights, last_run_at: null }]];
    const service = { id: 3, rating_average: 4.5, rating_count: 2, price: 40,
      favorites_count: 5, comments_count: 1 };
    const host = dbHost([formula, ["FROM services subject", () => [service]]]);

    const done = await runJob(job("ScoreWorker", [3, "service", 2]), host);
    assert.equal(done.value, 21);
  });

  test("an unknown metric in the weights is permanent and lists the known ones", async () => {
    const host = dbHost([userFormula({ strength: 1, karma: 2 })]);
    const done = await runJob(job("ScoreWorker", [7, "user", 1]), host);
    assertPermanent(done, 'score formula 1 (trust): unknown user metric "karma" (known: '
      + "strength, display_score, simbi_balance, services_count, review_count, "
      + "rating_average, followers_count)");
  });

  test("a weight that is not a number is permanent", async () => {
    const host = dbHost([userFormula({ strength: "2" })]);
    const done = await runJob(job("ScoreWorker", [7, "user", 1]), host);
    assertPermanent(done, 'score formula 1 (trust): the weight of strength must be a number, '
      + 'received "2"');
  });

  test("a formula for services applied to a user is permanent", async () => {
    const host = dbHost([userFormula({ price: 1 })]);
    const done = await runJob(job("ScoreWorker", [3, "service", 1]), host);
    assertPermanent(done, "score formula 1 (trust) scores users, not services");
  });

  test("an unknown formula is permanent", async () => {
    const host = dbHost([["FROM score_formulas", () => []]]);
    const done = await runJob(job("ScoreWorker", [7, "user", 9]), host);
    assertPermanent(done, "formula_id 9: no such score formula");
  });

  test("a bad subject type or id is permanent and named", async () => {
    const host = dbHost([]);
    assertPermanent(await runJob(job("ScoreWorker", [7, "group", 1]), host),
      'subject_type must be one of user, service, received "group"');
    assertPermanent(await runJob(job("ScoreWorker", ["7", "user", 1]), host),
      'subject_id must be a positive whole number, received "7"');
    assert.deepEqual(host.calls, []);
  });

  test("a missing or deleted subject is skipped", async () => {
    const host = dbHost([userFormula({ strength: 1 }), ["FROM users subject", () => []]]);
    const done = await runJob(job("ScoreWorker", [7, "user", 1]), host);
    assert.equal(done.skipped, "user 7 does not exist or is deleted");
    assert.deepEqual(calls(host, "db", "execute"), []);
  });
});

describe("ScoreQueryProcessorWorker", () => {
  // 750 changed users, ids 1..750, served a page at a time by id.
  const changedUsers = (params: Row) => {
    const first = Number(params.after) + 1;
    const last = Math.min(first + Number(params.limit) - 1, 750);
    return Array.from({ length: Math.max(last - first + 1, 0) },
      (_, i) => ({ ...ada, id: first + i, strength: first + i }));
  };

  test("scores the changed subjects page by page, then moves last_run_at to its start",
    async () => {
      const lastRun = "2026-12-01T10:00:00+00:00";
      const host = dbHost([userFormula({ strength: 1 }, lastRun),
        ["FROM users subject", changedUsers]]);
      const before = sqlTime(Date.now());
      const done = await runJob(job("ScoreQueryProcessorWorker", ["user", 1]), host);
      const after = sqlTime(Date.now());

      assert.equal(done.value, 750);
      const pages = calls(host, "db", "query").slice(1).map((call) => call.params.params);
      assert.deepEqual(pages, [
        { since: "2026-12-01 10:00:00.000+00:00", after: 0, limit: SCORE_BATCH_SIZE },
        { since: "2026-12-01 10:00:00.000+00:00", after: 500, limit: SCORE_BATCH_SIZE },
      ]);
      const [first, second, moved] = calls(host, "db", "execute")
        .map((call) => call.params.params as Row);
      assert.equal(first.id499, 500);
      assert.equal(first.value499, 500);
      assert.equal(second.id249, 750);
      assert.equal(second.id250, undefined);
      const startedAt = String(moved.started_at);
      assert.ok(before <= startedAt && startedAt <= after, startedAt);
      assert.equal(first.computed_at, startedAt);
    });

  test("a full last page is followed by one more query that finds nothing", async () => {
    const host = dbHost([userFormula({ strength: 1 }),
      ["FROM users subject", (params) => changedUsers(params).filter((row) => row.id <= 500)]]);
    const done = await runJob(job("ScoreQueryProcessorWorker", ["user", 1]), host);
    assert.equal(done.value, 500);
    assert.equal(calls(host, "db", "query").length, 3);
    assert.equal(calls(host, "db", "execute").length, 2);
  });

  test("a formula that never ran scores every subject", async () => {
    const host = dbHost([userFormula({ strength: 1 }), ["FROM users subject", () => [ada]]]);
    const done = await runJob(job("ScoreQueryProcessorWorker", ["user", 1]), host);
    assert.equal(done.value, 1);
    const page = calls(host, "db", "query")[1];
    assert.doesNotMatch(String(page.params.sql), /updated_at/);
    assert.deepEqual(page.params.params, { after: 0, limit: SCORE_BATCH_SIZE });
  });

  test("a missing formula is skipped, naming it, and nothing is written", async () => {
    const host = dbHost([["FROM score_formulas", () => []]]);
    const done = await runJob(job("ScoreQueryProcessorWorker", ["user", 1]), host);
    assert.equal(done.skipped, "no score formula 1 to recompute");
    assert.deepEqual(calls(host, "db", "execute"), []);
  });

  test("a formula of the other subject type is permanent", async () => {
    const host = dbHost([userFormula({ strength: 1 })]);
    const done = await runJob(job("ScoreQueryProcessorWorker", ["service", 1]), host);
    assertPermanent(done, "score formula 1 (trust) scores users, not services");
  });
});

describe("database timestamps", () => {
  test("are written as UTC text that sorts like SQLite's own", () => {
    assert.equal(sqlTime(Date.UTC(2026, 11, 4, 5, 6, 7, 89)), "2026-12-04 05:06:07.089+00:00");
  });

  test("are read back in that form from SQLite text and PostgreSQL ISO alike", () => {
    assert.equal(normalTime("2026-12-04 05:06:07"), "2026-12-04 05:06:07.000+00:00");
    assert.equal(normalTime("2026-12-04T06:06:07.5+01:00"), "2026-12-04 05:06:07.500+00:00");
    assert.equal(normalTime(null), null);
  });
});

describe("UpdateRatingWorker", () => {
  const service = { id: 3, user_id: 12, rating_average: null, rating_count: 0 };

  test("stores the average to two decimals and the count, then rescores the owner",
    async () => {
      // Ratings 5, 4 and 4.
      const host = dbHost([["FROM services", () => [service]],
        ["FROM reviews", () => [{ count: 3, total: 13 }]]]);
      const done = await runJob(job("UpdateRatingWorker", [3]), host);

      assert.deepEqual(done.value,
        { service_id: 3, rating_average: 4.33, rating_count: 3, changed: true });
      const [update] = calls(host, "db", "execute");
      assert.deepEqual({ ...update.params.params as Row, now: null },
        { id: 3, average: 4.33, count: 3, now: null });
      assert.deepEqual(enqueued(host), [["DisplayScoreWorker", [12]]]);
    });

  test("means round to two decimals, half up, and no ratings is no average", () => {
    assert.equal(mean2(14, 3), 4.67);
    assert.equal(mean2(33, 8), 4.13);
    assert.equal(mean2(5, 1), 5);
    assert.equal(mean2(0, 0), null);
  });

  test("an unchanged rating is not written again, and the owner is still rescored",
    async () => {
      const rated = { ...service, rating_average: 4.33, rating_count: 3 };
      const host = dbHost([["FROM services", () => [rated]],
        ["FROM reviews", () => [{ count: 3, total: 13 }]]]);
      const done = await runJob(job("UpdateRatingWorker", [3]), host);
      assert.equal((done.value as Row).changed, false);
      assert.deepEqual(calls(host, "db", "execute"), []);
      assert.deepEqual(enqueued(host), [["DisplayScoreWorker", [12]]]);
    });

  test("a missing service is skipped", async () => {
    const host = dbHost([["FROM services", () => []]]);
    const done = await runJob(job("UpdateRatingWorker", [3]), host);
    assert.equal(done.skipped, "service 3 does not exist");
    assert.deepEqual(enqueued(host), []);
  });

  test("a bad service id is permanent", async () => {
    const done = await runJob(job("UpdateRatingWorker", [0]), dbHost([]));
    assertPermanent(done, "service_id must be a positive whole number, received 0");
  });
});

describe("RecalculateStrengthWorker", () => {
  const profile = { first_name: "Ada", last_name: "Lovelace", phone: "+44 20 7946 0000",
    bio: "Mathematician", avatar: '{"64": "avatars/7/64.jpg"}' };
  const none = { services: 0, reviews: 0, trades: 0, followers: 0 };

  test("the tier at each boundary", () => {
    const tiers = [0, 99, 100, 299, 300, 699, 700, 1150].map((strength) => tierFor(strength));
    assert.deepEqual(tiers,
      ["bronze", "bronze", "silver", "silver", "gold", "gold", "platinum", "platinum"]);
  });

  test("a complete profile is 100, and each activity counts up to its cap", () => {
    assert.equal(strengthOf(profile, none), 100);
    assert.equal(strengthOf({ first_name: "Ada", last_name: "", avatar: "null" }, none), 10);
    assert.equal(strengthOf(profile, { services: 1, reviews: 2, trades: 3, followers: 4 }),
      100 + 25 + 20 + 45 + 8);
    const most = { services: 11, reviews: 31, trades: 21, followers: 101 };
    assert.equal(strengthOf(profile, most), 100 + 250 + 300 + 300 + 200);
  });

  function strengthHost(user: Row, activity: Row, rowcount = 1): FakeHost {
    return dbHost([["FROM users WHERE", () => [{ id: 7, ...user }]],
      ["AS followers", () => [activity]]], rowcount);
  }

  test("a rise to gold stores the tier and enqueues one account push", async () => {
    // 100 for the profile, 4 services (100), 10 reviews (100): exactly 300.
    const host = strengthHost({ ...profile, strength: 50, tier: "bronze" },
      { ...none, services: 4, reviews: 10 });
    const done = await runJob(job("RecalculateStrengthWorker", [7]), host);

    assert.deepEqual(done.value,
      { user_id: 7, strength: 300, tier: "gold", previous_tier: "bronze", pushed: true });
    const [update] = calls(host, "db", "execute");
    assert.match(String(update.params.sql), /WHERE id = :id AND tier = :old_tier/);
    assert.deepEqual({ ...update.params.params as Row, now: null },
      { id: 7, strength: 300, tier: "gold", old_tier: "bronze", now: null });
    assert.deepEqual(enqueued(host), [["SendPushWorker", [7, "account",
      "You reached the Gold tier: your profile strength is 300.",
      { tier: "gold", previous_tier: "bronze", strength: 300 }]]]);
  });

  test("99 stays bronze and 100 is silver", async () => {
    // Names, phone and bio (60), a service (25), a review (10) and 2 followers (4): 99.
    const user = { ...profile, avatar: null, strength: 0, tier: "bronze" };
    const bronze = strengthHost(user, { ...none, services: 1, reviews: 1, followers: 2 });
    const stayed = await runJob(job("RecalculateStrengthWorker", [7]), bronze);
    assert.equal((stayed.value as Row).strength, 99);
    assert.equal((stayed.value as Row).tier, "bronze");
    assert.deepEqual(enqueued(bronze), []);

    // The complete profile alone: 100.
    const silver = strengthHost({ ...profile, strength: 0, tier: "bronze" }, none);
    const rose = await runJob(job("RecalculateStrengthWorker", [7]), silver);
    assert.equal((rose.value as Row).strength, 100);
    assert.equal((rose.value as Row).tier, "silver");
    assert.equal(enqueued(silver).length, 1);
  });

  test("a fall stores the lower tier without a push", async () => {
    const host = strengthHost({ ...profile, strength: 320, tier: "gold" }, none);
    const done = await runJob(job("RecalculateStrengthWorker", [7]), host);
    assert.equal((done.value as Row).tier, "silver");
    assert.equal(calls(host, "db", "execute").length, 1);
    assert.deepEqual(enqueued(host), []);
  });

  test("the same strength writes nothing and pushes nothing", async () => {
    const host = strengthHost({ ...profile, strength: 100, tier: "silver" }, none);
    const done = await runJob(job("RecalculateStrengthWorker", [7]), host);
    assert.equal((done.value as Row).pushed, false);
    assert.deepEqual(calls(host, "db", "execute"), []);
    assert.deepEqual(enqueued(host), []);
  });

  test("a tier changed by another run meanwhile fails the job for a retry", async () => {
    const host = strengthHost({ ...profile, strength: 0, tier: "bronze" }, none, 0);
    const done = await runJob(job("RecalculateStrengthWorker", [7]), host);
    assert.equal(done.error?.retryable, true);
    assert.match(done.error?.message ?? "", /user 7 changed tier or was deleted/);
    assert.deepEqual(enqueued(host), []);
  });

  test("a missing or deleted user is skipped", async () => {
    const host = dbHost([["FROM users WHERE", () => []]]);
    const done = await runJob(job("RecalculateStrengthWorker", [7]), host);
    assert.equal(done.skipped, "user 7 does not exist or is deleted");
  });
});

describe("NotifyLeaderboardWorker", () => {
  const BOARD = "leaderboard:weekly_earners";
  const TOP = "leaderboard:weekly_earners:top10";
  // Users 1..12, user 1 earning the most.
  const earners = (order: number[]) => order.map((id, i) => ({ user_id: id, earned: 500 - i }));
  const boardHost = (order: number[]) =>
    dbHost([["FROM simbi_transactions", () => earners(order)]]);
  const twelve = Array.from({ length: 12 }, (_, i) => i + 1);

  test("the first run builds the board and pushes to everyone in the top 10", async () => {
    const host = boardHost(twelve);
    const before = Date.now();
    const done = await runJob(job("NotifyLeaderboardWorker", ["weekly_earners"]), host);

    const top = done.value as Row[];
    assert.equal(top.length, 10);
    assert.deepEqual(top[0], { rank: 1, user_id: 1, score: 500 });
    assert.deepEqual(top[9], { rank: 10, user_id: 10, score: 491 });
    assert.equal(host.redis.sorted(BOARD).length, 12);
    assert.equal(host.redis.zsets.get(BOARD)?.get("12"), 489);
    assert.equal(host.redis.strings.get(TOP), JSON.stringify(twelve.slice(0, 10)));

    const pushes = enqueued(host);
    assert.equal(pushes.length, 10);
    assert.deepEqual(pushes[2], ["SendPushWorker", [3, "leaderboard",
      "You are #3 of this week's top earners, with 498 Simbi received.",
      { board: "weekly_earners", rank: 3, score: 498 }]]);
    const since = Date.parse(String(
      (calls(host, "db", "query")[0].params.params as Row).since).replace(" ", "T"));
    assert.ok(Math.abs(before - 7 * 86_400_000 - since) < 5000, String(since));
  });

  test("a later run pushes only to those who entered the top 10, and replaces the board",
    async () => {
      const host = boardHost([1, 2, 11, 3, 4, 5, 6, 7, 8, 9]);
      host.redis.strings.set(TOP, JSON.stringify([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
      host.redis.run({ command: "ZADD", keys: [BOARD], args: [1, "99"] });
      await runJob(job("NotifyLeaderboardWorker", ["weekly_earners"]), host);

      assert.deepEqual(enqueued(host), [["SendPushWorker", [11, "leaderboard",
        "You are #3 of this week's top earners, with 498 Simbi received.",
        { board: "weekly_earners", rank: 3, score: 498 }]]]);
      assert.equal(host.redis.zsets.get(BOARD)?.has("99"), false);
      const [replace] = calls(host, "redis", "multi");
      const commands = replace.params.commands as Row[];
      assert.deepEqual(commands.map((command) => command.command), ["DEL", "ZADD", "SET"]);
    });

  test("a week without transfers empties the board and pushes nothing", async () => {
    const host = boardHost([]);
    host.redis.run({ command: "ZADD", keys: [BOARD], args: [1, "99"] });
    const done = await runJob(job("NotifyLeaderboardWorker", ["weekly_earners"]), host);
    assert.deepEqual(done.value, []);
    assert.equal(host.redis.zsets.has(BOARD), false);
    assert.equal(host.redis.strings.get(TOP), "[]");
    assert.deepEqual(enqueued(host), []);
  });

  test("an unknown board is permanent and lists the known ones", async () => {
    const done = await runJob(job("NotifyLeaderboardWorker", ["monthly_givers"]), dbHost([]));
    assertPermanent(done, 'board must be one of weekly_earners, received "monthly_givers"');
  });
});
