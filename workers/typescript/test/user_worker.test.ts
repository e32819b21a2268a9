import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { destroyStatements, fileKeys } from "../src/destroy_user";
import { MAX_TRANSFER_SIMBI, transferStatements } from "../src/payments";
import { HostError } from "../src/runtime/host";
import type { CallParams } from "../src/runtime/host";
import type { DoneMessage, JobMessage } from "../src/runtime/protocol";
import { runJob } from "../src/runtime/worker";
import { MILESTONE_BONUS_SIMBI, leaseCutoff, milestoneStatements } from "../src/user_worker";
import type { RecordedCall } from "./helpers";
import { FakeHost } from "./helpers";

function job(worker: string, args: unknown[]): JobMessage {
  return { type: "job", job_id: "job-1", worker, args, attempt: 1 };
}

type Answer = (call: RecordedCall) => unknown;

/** A FakeHost whose every call, redis too, is answered by `answer` (or throws from it). */
class ScriptedHost extends FakeHost {
  constructor(private readonly script: Answer) {
    super();
  }

  override async call(service: string, method: string, params: CallParams): Promise<unknown> {
    const call = { service, method, params: structuredClone(params) };
    this.calls.push(call);
    return this.script(call);
  }

  named(service: string, method: string): RecordedCall[] {
    return this.calls.filter((c) => c.service === service && c.method === method);
  }
}

const sqlOf = (call: RecordedCall) => String(call.params.sql ?? "");

function rows(...found: object[]) {
  return { rows: found };
}

function mismatch(label: string): HostError {
  return new HostError("RowCountMismatch",
    `${label}: touched 0 row(s), required 1; the transaction was rolled back`, false);
}

function assertPermanent(done: DoneMessage, pattern: RegExp): void {
  assert.equal(done.error?.class, "PermanentError", JSON.stringify(done));
  assert.equal(done.error?.retryable, false);
  assert.match(done.error?.message ?? "", pattern);
}

// A payment world: users 1 (balance 100) and 2 (balance 5), no ledger row unless given.
function paymentHost(opts: { ledger?: object; fail?: HostError; users?: object[] } = {}) {
  const users = opts.users ?? [{ id: 1, simbi_balance: 100, deleted_at: null },
    { id: 2, simbi_balance: 5, deleted_at: null }];
  let ledgerReads = 0;
  return new ScriptedHost((call) => {
    if (call.method === "transaction") {
      if (opts.fail) throw opts.fail;
      return { results: [{ rowcount: 1, rows: [{ id: 41 }] },
        { rowcount: 1, rows: [{ simbi_balance: 70 }] },
        { rowcount: 1, rows: [{ simbi_balance: 35 }] }] };
    }
    if (sqlOf(call).includes("FROM simbi_transactions")) {
      ledgerReads += 1;
      // The ledger row appears after the transaction failed: a concurrent run's commit.
      const visible = opts.ledger && (opts.fail === undefined || ledgerReads > 1);
      return visible ? rows(opts.ledger as object) : rows();
    }
    if (sqlOf(call).includes("FROM users")) return rows(...users);
    return { job_id: "j-slack" };
  });
}

const pay = (...args: unknown[]) => job("PayingSimbiWorker", args);

describe("PayingSimbiWorker", () => {
  test("moves the amount with one transaction: ledger row, debit and credit, one row each",
    async () => {
      const host = paymentHost();
      const done = await runJob(pay(1, 2, 30, "guitar lesson", "trade-9"), host);

      assert.deepEqual(done.value, { applied: true, transaction_id: 41, from_balance: 70,
        to_balance: 35 });
      const [tx] = host.named("db", "transaction");
      const [ledger, debit, credit] = tx.params.statements as Record<string, any>[];
      assert.match(ledger.sql, /^INSERT INTO simbi_transactions .*VALUES \('transfer'/);
      assert.deepEqual(ledger.params,
        { from: 1, to: 2, amount: 30, reason: "guitar lesson", key: "trade-9" });
      assert.equal(debit.sql, "UPDATE users SET simbi_balance = simbi_balance - :amount "
        + "WHERE id = :from AND simbi_balance >= :amount AND deleted_at IS NULL "
        + "RETURNING simbi_balance");
      assert.deepEqual([debit.params, debit.expect_rows, debit.label],
        [{ from: 1, to: 2, amount: 30 }, 1, "debit"]);
      assert.match(credit.sql, /simbi_balance \+ :amount WHERE id = :to AND deleted_at IS NULL/);
      assert.deepEqual([ledger.expect_rows, credit.expect_rows], [1, 1]);
    });

  test("updates the two balances in user-id order, so opposite transfers cannot deadlock",
    () => {
      const labels = (from: number, to: number) => transferStatements(
        { from, to, amount: 1, reason: "", key: "k" }).map((s) => s.label);
      assert.deepEqual(labels(1, 2), ["ledger", "debit", "credit"]);
      assert.deepEqual(labels(2, 1), ["ledger", "credit", "debit"]);
    });

  test("the balances of a transfer from the higher id come back the right way round",
    async () => {
      const host = paymentHost();
      const done = await runJob(pay(2, 1, 3, "", "k-rev"), host);
      // Results are [ledger, credit of 1, debit of 2]: 70 is the credit here.
      assert.deepEqual(done.value, { applied: true, transaction_id: 41, from_balance: 35,
        to_balance: 70 });
    });

  for (const [args, pattern] of [
    [[1, 2, 0, "", "k"], /^amount must be a whole number of Simbi from 1 to 1000000, received 0/],
    [[1, 2, 2.5, "", "k"], /^amount must be .* received 2\.5$/],
    [[1, 2, "5", "", "k"], /^amount must be .* received "5"$/],
    [[1, 2, MAX_TRANSFER_SIMBI + 1, "", "k"], /^amount must be .* received 1000001$/],
    [[1, 2, -3, "", "k"], /^amount must be .* received -3$/],
    [[1, 1, 5, "", "k"], /^to_user_id must be another user than from_user_id 1, received 1$/],
    [[0, 2, 5, "", "k"], /^from_user_id must be a positive whole number id, received 0$/],
    [["2", 1, 5, "", "k"], /^from_user_id must be .* received "2"$/],
    [[1, null, 5, "", "k"], /^to_user_id must be .* received null$/],
    [[1, 2, 5, "", ""], /^idempotency_key must be a non-empty string, received ""$/],
    [[1, 2, 5, "", 7], /^idempotency_key must be a non-empty string, received 7$/],
    [[1, 2, 5, "", "k".repeat(201)],
      /^idempotency_key must be at most 200 characters, received "201 characters"$/],
    [[1, 2, 5, null, "k"], /^reason must be a string, received null$/],
    [[1, 2, 5, "é".repeat(201), "k"], /^reason must be at most 200 characters/],
  ] as [unknown[], RegExp][]) {
    test(`refuses ${JSON.stringify(args).slice(0, 60)} before touching the database`,
      async () => {
        const host = paymentHost();
        assertPermanent(await runJob(pay(...args), host), pattern);
        assert.deepEqual(host.calls, []);
      });
  }

  test("a reason of 200 characters outside the BMP is still 200 characters", async () => {
    const host = paymentHost();
    const done = await runJob(pay(1, 2, 5, "🎸".repeat(200), "k-emoji"), host);
    assert.equal(done.error, undefined);
  });

  test("a key used before by the same transfer answers applied false without a transaction",
    async () => {
      const host = paymentHost({ ledger: { id: 9, kind: "transfer", from_user_id: 1,
        to_user_id: 2, amount: 30 } });
      const done = await runJob(pay(1, 2, 30, "again", "trade-9"), host);

      assert.deepEqual(done.value, { applied: false, transaction_id: 9, from_balance: 100,
        to_balance: 5 });
      assert.deepEqual(host.named("db", "transaction"), []);
    });

  test("a key used before by another amount is permanent and names both transfers",
    async () => {
      const host = paymentHost({ ledger: { id: 9, kind: "transfer", from_user_id: 1,
        to_user_id: 2, amount: 31 } });
      const done = await runJob(pay(1, 2, 30, "", "trade-9"), host);
      assertPermanent(done,
        /^idempotency_key "trade-9" was used by another transfer .*"amount":31.*of 30$/);
      assert.deepEqual(host.named("db", "transaction"), []);
    });

  test("a run of the same key that commits first makes the unique violation applied false",
    async () => {
      const violation = new HostError("ConstraintViolation",
        "constraint violated: duplicate key value", false);
      const host = paymentHost({ fail: violation, ledger: { id: 12, kind: "transfer",
        from_user_id: 1, to_user_id: 2, amount: 30 } });
      const done = await runJob(pay(1, 2, 30, "", "race"), host);
      assert.deepEqual(done.value, { applied: false, transaction_id: 12, from_balance: 100,
        to_balance: 5 });
    });

  test("insufficient funds is permanent and enqueues a post to Slack's payments channel",
    async () => {
      const host = paymentHost({ fail: mismatch("debit") });
      const done = await runJob(pay(2, 1, 30, "rent <!channel> & more", "k-poor"), host);

      assertPermanent(done, /^insufficient funds: user 2 has 5 Simbi, the transfer of 30/);
      const [slack] = host.named("jobs", "enqueue");
      assert.deepEqual(slack.params, { worker: "SlackNotifierWorker", args: ["payments", 2,
        "Payment refused, insufficient Simbi: user 2 has 5 and tried to pay 30 to user 1 "
        + "for \"rent &lt;!channel&gt; &amp; more\""] });
    });

  test("a recipient that is missing or deleted is permanent, before any transaction",
    async () => {
      for (const [users, pattern] of [
        [[{ id: 1, simbi_balance: 100, deleted_at: null }], /^to_user_id: user 2 does not exist$/],
        [[{ id: 1, simbi_balance: 100, deleted_at: null },
          { id: 2, simbi_balance: 0, deleted_at: "2026-12-01T00:00:00" }],
        /^to_user_id: user 2 is deleted$/],
        [[{ id: 2, simbi_balance: 0, deleted_at: null }], /^from_user_id: user 1 does not exist$/],
      ] as [object[], RegExp][]) {
        const host = paymentHost({ users });
        assertPermanent(await runJob(pay(1, 2, 5, "", "k"), host), pattern);
        assert.deepEqual(host.named("db", "transaction"), []);
      }
    });

  test("a recipient deleted during the transfer (the credit touched nothing) is permanent",
    async () => {
      const host = paymentHost({ fail: mismatch("credit") });
      assertPermanent(await runJob(pay(1, 2, 5, "", "k"), host),
        /^to_user_id: user 2 was deleted; nothing moved$/);
      assert.deepEqual(host.named("jobs", "enqueue"), []);
    });

  test("a database outage stays retryable", async () => {
    const host = paymentHost({ fail: new HostError("JobError", "database unavailable", true) });
    const done = await runJob(pay(1, 2, 5, "", "k"), host);
    assert.equal(done.error?.retryable, true);
    assert.equal(done.error?.class, "JobError");
  });
});

function quicksterHost(fail?: HostError, user: object | null = { id: 3, deleted_at: null }) {
  return new ScriptedHost((call) => {
    if (call.method === "transaction") {
      if (fail) throw fail;
      return { results: [{ rowcount: 1 }, { rowcount: 1, rows: [{ id: 77 }] },
        { rowcount: 1, rows: [{ simbi_balance: 60 }] }] };
    }
    return user === null ? rows() : rows(user);
  });
}

describe("QuicksterWorker", () => {
  test("records the milestone, writes the bonus ledger row and credits it in one unit",
    async () => {
      const host = quicksterHost();
      const done = await runJob(job("QuicksterWorker", [3, "first_trade"]), host);

      assert.deepEqual(done.value, { user_id: 3, milestone: "first_trade", bonus: 50,
        transaction_id: 77, balance: 60 });
      const [tx] = host.named("db", "transaction");
      assert.deepEqual(tx.params.statements, milestoneStatements(3, "first_trade"));
      const [milestone, bonus, credit] = milestoneStatements(3, "first_trade");
      assert.match(milestone.sql, /ON CONFLICT \(user_id, kind\) DO NOTHING$/);
      assert.deepEqual([milestone.params, milestone.expect_rows],
        [{ user_id: 3, kind: "first_trade" }, 1]);
      assert.match(bonus.sql, /VALUES \('bonus', NULL, :user_id/);
      assert.deepEqual(bonus.params, { user_id: 3, amount: 50, reason: "milestone first_trade",
        key: "quickster:3:first_trade" });
      assert.deepEqual([credit.params, credit.expect_rows], [{ user_id: 3, amount: 50 }, 1]);
    });

  test("every milestone has a positive whole bonus", () => {
    assert.deepEqual(Object.keys(MILESTONE_BONUS_SIMBI), ["profile_completed", "first_service",
      "first_message", "first_review", "first_trade"]);
    for (const bonus of Object.values(MILESTONE_BONUS_SIMBI)) {
      assert.ok(Number.isSafeInteger(bonus) && bonus > 0);
    }
  });

  test("a milestone reached before is a skip: the rolled-back unit paid nothing", async () => {
    const done = await runJob(job("QuicksterWorker", [3, "first_review"]),
      quicksterHost(mismatch("milestone")));
    assert.equal(done.skipped, "user 3 reached first_review before");
  });

  test("an unknown action is permanent and lists the known ones", async () => {
    const host = quicksterHost();
    const done = await runJob(job("QuicksterWorker", [3, "toString"]), host);
    assertPermanent(done, new RegExp("^action must be one of profile_completed, first_service, "
      + 'first_message, first_review, first_trade, received "toString"$'));
    assert.deepEqual(host.calls, []);
  });

  test("a missing or deleted user is a skip", async () => {
    let done = await runJob(job("QuicksterWorker", [3, "first_message"]),
      quicksterHost(undefined, null));
    assert.equal(done.skipped, "user 3 does not exist");
    done = await runJob(job("QuicksterWorker", [3, "first_message"]),
      quicksterHost(undefined, { id: 3, deleted_at: "2026-12-01" }));
    assert.equal(done.skipped, "user 3 is deleted");
  });
});

// A user with an avatar, an upload stored under a key, one from a URL, an image, service 31.
function destroyHost(user: object | null, listed: string[]) {
  return new ScriptedHost((call) => {
    const sql = sqlOf(call);
    if (call.method === "transaction") {
      const count = user === null ? 0 : 1;
      return { results: (call.params.statements as unknown[]).map(() => ({ rowcount: count })) };
    }
    if (call.service === "db" && user === null) return rows();
    if (sql.includes("FROM users")) return rows(user as object);
    if (sql.includes("FROM uploads")) {
      return rows({ source: "uploads/5/a.png" }, { source: "https://example.org/b.png" });
    }
    if (sql.includes("FROM images")) {
      return rows({ variants: JSON.stringify({ original: { key: "images/9/original.png" },
        thumb: { key: "images/9/thumb.webp" } }) });
    }
    if (sql.includes("FROM services")) return rows({ id: 31 });
    if (call.service === "redis") return redisAnswer(call.params, listed);
    if (call.service === "storage") return { deleted: true };
    return { delivered: "outbox" };
  });
}

// Two pages of leaderboards, a stored top-10 list, and stats of service 31 and of 310.
function redisAnswer(params: CallParams, listed: string[]): unknown {
  const args = (params.args ?? []) as unknown[];
  switch (params.command) {
    case "LRANGE": return listed;
    case "SCAN":
      if (args[6] === "string") return [0, ["leaderboard:weekly_earners:top10"]];
      if (args[6] === "hash") {
        return [0, ["service_stats:31:total", "service_stats:310:total",
          "service_stats:31:2026-12-01"]];
      }
      return args[0] === "0" ? [17, ["leaderboard:weekly_earners"]]
        : [0, ["leaderboard:all_time"]];
    case "ZREM": return 1;
    case "GET": return "[8, 5, 9]";
    case "DEL": return (params.keys as unknown[]).length;
    default: return "OK";
  }
}

const redisSteps = (host: ScriptedHost, command: string) => host.calls
  .filter((c) => c.service === "redis" && c.params.command === command)
  .map((c) => [c.params.keys, c.params.args]);

describe("DestroyUserWorker", () => {
  test("names the user in every statement, detaches the ledger first and deletes the user last",
    () => {
      const statements = destroyStatements(5);
      assert.ok(statements.every((s) => JSON.stringify(s.params) === '{"id":5}'));
      assert.ok(statements.every((s) => s.expect_rows === undefined));
      assert.deepEqual(statements.slice(0, 2).map((s) => s.sql), [
        "UPDATE simbi_transactions SET from_user_id = NULL WHERE from_user_id = :id",
        "UPDATE simbi_transactions SET to_user_id = NULL WHERE to_user_id = :id"]);
      assert.equal(statements.at(-1)?.sql, "DELETE FROM users WHERE id = :id");
      const tables = statements.map((s) => /(?:FROM|UPDATE) (\w+)/.exec(s.sql)?.[1]);
      for (const table of ["devices", "follows", "messages", "talk_participants", "comments",
        "compliments", "favors", "favorites", "matches", "milestones", "reviews", "services",
        "social_connections", "social_accounts", "notification_preferences",
        "suggestion_history", "notifications_sent", "scores", "search_documents", "images",
        "uploads", "talks"]) {
        assert.ok(tables.includes(table), table);
      }
      assert.ok(tables.indexOf("images") < tables.indexOf("uploads"));
    });

  test("file keys come from the avatar sizes, stored uploads and image variants, not URLs",
    () => {
      const keys = fileKeys('{"400": "avatars/5/v1/400.webp", "64": "avatars/5/v1/64.webp"}',
        ["uploads/5/a.png", "https://example.org/b.png", null],
        [{ original: { key: "images/9/o.png" } }, null, "not json"]);
      assert.deepEqual(keys, ["avatars/5/v1/400.webp", "avatars/5/v1/64.webp",
        "images/9/o.png", "uploads/5/a.png"]);
    });

  test("lists files and services in Redis before the transaction, cleans up after it",
    async () => {
      const listed = ["file:avatars/5/v1/400.webp", "file:images/9/original.png",
        "service:31", "file:avatars/5/v1/400.webp"];
      const host = destroyHost({ id: 5, avatar: { 400: "avatars/5/v1/400.webp" },
        simbi_balance: 12 }, listed);
      const done = await runJob(job("DestroyUserWorker", [5]), host);

      const steps = host.calls.map((c) => `${c.service}.${c.method}`);
      assert.deepEqual(steps.slice(0, 6), ["db.query", "db.query", "db.query", "db.query",
        "redis.multi", "db.transaction"]);
      assert.deepEqual(steps.slice(-2), ["mixpanel.people_delete", "redis.call"]);
      const [remember] = host.named("redis", "multi");
      assert.deepEqual(remember.params.commands, [
        { command: "RPUSH", keys: ["destroy_user:pending:5"], args: [
          "file:avatars/5/v1/400.webp", "file:images/9/original.png",
          "file:images/9/thumb.webp", "file:uploads/5/a.png", "service:31"] },
        { command: "EXPIRE", keys: ["destroy_user:pending:5"], args: [2_592_000] }]);
      assert.deepEqual(host.named("storage", "delete").map((c) => c.params.key),
        ["avatars/5/v1/400.webp", "images/9/original.png"]);
      assert.deepEqual(redisSteps(host, "SCAN")[0][1],
        ["0", "MATCH", "leaderboard:*", "COUNT", 500, "TYPE", "zset"]);
      assert.deepEqual(redisSteps(host, "ZREM"),
        [[["leaderboard:weekly_earners"], ["5"]], [["leaderboard:all_time"], ["5"]]]);
      assert.deepEqual(redisSteps(host, "SET"),
        [[["leaderboard:weekly_earners:top10"], ["[8,9]"]]]);
      assert.deepEqual(redisSteps(host, "DEL").map(([keys]) => keys), [
        ["events:user:5", "display_score:5", "response_time:5"],
        ["service_stats:31:total", "service_stats:31:2026-12-01"],
        ["destroy_user:pending:5"]]);
      assert.deepEqual(host.named("mixpanel", "people_delete")[0].params, { distinct_id: "5" });
      assert.deepEqual(done.value, { user_id: 5, destroyed: true, rows_changed: 28,
        files_deleted: 2, redis_keys_deleted: 5, leaderboard_entries: 3,
        forfeited_balance: 12 });
    });

  test("a missing user still finishes what a crashed run left on the list", async () => {
    const host = destroyHost(null, ["file:avatars/5/v1/400.webp"]);
    const done = await runJob(job("DestroyUserWorker", [5]), host);

    assert.deepEqual(host.named("redis", "multi"), []);
    assert.deepEqual(host.named("storage", "delete").map((c) => c.params),
      [{ key: "avatars/5/v1/400.webp" }]);
    assert.equal((done.value as Record<string, unknown>).destroyed, false);
    assert.equal((done.value as Record<string, unknown>).rows_changed, 0);
  });

  test("a bad user id is permanent", async () => {
    assertPermanent(await runJob(job("DestroyUserWorker", [-5]), destroyHost(null, [])),
      /^user_id must be a positive whole number id, received -5$/);
  });
});

function listingHost(service: object | null, claims: Record<number, string | null>) {
  return new ScriptedHost((call) => {
    const sql = sqlOf(call);
    const params = call.params.params as Record<string, unknown> | undefined;
    const key = String(params?.key ?? "");
    const user = Number(key.split(":")[2]);
    if (sql.includes("FROM services")) return service === null ? rows() : rows(service);
    if (sql.includes("FROM follows")) return rows({ user_id: 8 }, { user_id: 9 });
    if (sql.startsWith("INSERT INTO notifications_sent")) {
      return { rowcount: user in claims ? 0 : 1 };
    }
    if (sql.startsWith("SELECT sent_at")) return rows({ sent_at: claims[user] });
    if (sql.includes("created_at < :cutoff")) return { rowcount: 0 };
    if (sql.startsWith("UPDATE")) return { rowcount: 1 };
    return { job_id: "j-push" };
  });
}

const active = { id: 4, title: "Bike repair", status: "active", user_id: 2,
  first_name: "Grace", deleted_at: null };

describe("FriendNewListingWorker", () => {
  test("claims each follower and friend, then enqueues one push and marks it sent",
    async () => {
      const host = listingHost(active, {});
      const done = await runJob(job("FriendNewListingWorker", [4]), host);

      assert.deepEqual(done.value, { service_id: 4, recipients: 2, pushed: 2,
        already_pushed: 0 });
      const [recipients] = host.named("db", "query").filter((c) => sqlOf(c).includes("UNION"));
      assert.deepEqual(recipients.params.params, { owner: 2 });
      const claims = host.named("db", "execute").filter((c) => sqlOf(c).startsWith("INSERT"));
      assert.deepEqual(claims.map((c) => c.params.params), [
        { user_id: 8, key: "friend_listing:4:8" }, { user_id: 9, key: "friend_listing:4:9" }]);
      assert.deepEqual(host.named("jobs", "enqueue").map((c) => c.params), [8, 9].map((id) => ({
        worker: "SendPushWorker", args: [id, "followers", "Grace listed a new service: "
          + "Bike repair", { type: "friend_new_listing", service_id: 4 }] })));
      const order = host.calls.map((c) => sqlOf(c).split(" ")[0] || c.method);
      assert.deepEqual(order.slice(2, 5), ["INSERT", "enqueue", "UPDATE"]);
    });

  test("a recipient pushed before is not pushed again", async () => {
    const host = listingHost(active, { 8: "2026-12-01 10:00:00" });
    const done = await runJob(job("FriendNewListingWorker", [4]), host);
    assert.deepEqual(done.value, { service_id: 4, recipients: 2, pushed: 1, already_pushed: 1 });
    assert.deepEqual(host.named("jobs", "enqueue").map((c) => (c.params.args as unknown[])[0]),
      [9]);
  });

  test("a claim another run holds right now makes the job retry after the others",
    async () => {
      const host = listingHost(active, { 9: null });
      const done = await runJob(job("FriendNewListingWorker", [4]), host);
      assert.equal(done.error?.retryable, true);
      assert.match(done.error?.message ?? "", /^1 recipient\(s\) of service 4 are being/);
      assert.equal(host.named("jobs", "enqueue").length, 1);
    });

  test("a missing or inactive service, or a deleted owner, is a skip", async () => {
    const cases: [object | null, string][] = [
      [null, "service 4 does not exist"],
      [{ ...active, status: "paused" }, 'service 4 is "paused", not active'],
      [{ ...active, deleted_at: "2026-12-01" }, "the owner of service 4 is deleted"],
    ];
    for (const [service, reason] of cases) {
      const done = await runJob(job("FriendNewListingWorker", [4]), listingHost(service, {}));
      assert.equal(done.skipped, reason);
    }
  });

  test("the lease cutoff is UTC text that SQLite and PostgreSQL both compare", () => {
    assert.equal(leaseCutoff(Date.UTC(2026, 11, 4, 10, 2, 30)), "2026-12-04 10:00:30+00:00");
  });
});
