import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { DoneMessage, JobMessage } from "../src/runtime/protocol";
import { runJob } from "../src/runtime/worker";
import { MAX_BODY_CHARS } from "../src/search_worker";
import type { RecordedCall } from "./helpers";
import { FakeHost } from "./helpers";

type Row = Record<string, unknown>;

function job(worker: string, args: unknown[], jobId = "job-1"): JobMessage {
  return { type: "job", job_id: jobId, worker, args, attempt: 1 };
}

/** The app's services and users, and a search index, behind the db, search and jobs calls. */
class Marketplace {
  rows: Row[] = [];
  index = new Map<string, Row>();
  enqueued: RecordedCall[] = [];
  host = new FakeHost((call) => this.answer(call));

  service(id: number, values: Row = {}): void {
    this.rows.push({ id, user_id: 7, title: "Guitar lessons", description: "Chords and scales",
      category: "music", status: "active", first_name: "Ada", last_name: "Lovelace",
      deleted_at: null, ...values });
  }

  user(id: number, values: Row = {}): void {
    this.rows.push({ id, first_name: "Grace", last_name: "Hopper", bio: "Compilers",
      deleted_at: null, ...values });
  }

  async run(worker: string, args: unknown[], jobId = "job-1"): Promise<DoneMessage> {
    return runJob(job(worker, args, jobId), this.host);
  }

  calls(service: string, method: string): RecordedCall[] {
    return this.host.calls.filter((c) => c.service === service && c.method === method);
  }

  private answer({ service, method, params }: RecordedCall): unknown {
    const key = `${params.record_type}:${params.record_id}`;
    switch (`${service}.${method}`) {
      case "db.query": return { rows: this.select(params.params as Row) };
      case "db.execute": return { rowcount: 0 };
      case "search.upsert": this.index.set(key, params); return { indexed: true };
      case "search.remove": return { removed: this.index.delete(key) };
      case "jobs.enqueue": return { job_id: `next-${this.calls("jobs", "enqueue").length}` };
      default: throw new Error(`unexpected call ${service}.${method}`);
    }
  }

  private select(params: Row): Row[] {
    if (params.id !== undefined) return this.rows.filter((row) => row.id === params.id);
    const after = this.rows.filter((row) => (row.id as number) > (params.after_id as number));
    return after.slice(0, params.limit as number);
  }
}

function assertPermanent(done: DoneMessage, argument: string): void {
  assert.equal(done.error?.class, "PermanentError");
  assert.equal(done.error?.retryable, false);
  assert.match(done.error?.message ?? "", new RegExp(`^${argument} must `));
}

describe("SearchIndexWorker", () => {
  test("indexes an active service by title, description, category and owner name",
    async () => {
      const app = new Marketplace();
      app.service(3);

      const done = await app.run("SearchIndexWorker", ["service", 3]);

      assert.deepEqual(done.value, { record_type: "service", record_id: 3, action: "indexed" });
      assert.deepEqual(app.calls("search", "upsert")[0].params, { record_type: "service",
        record_id: 3, owner_id: 7, title: "Guitar lessons",
        body: "Chords and scales\nmusic\nAda Lovelace" });
      const [select] = app.calls("db", "query");
      assert.match(select.params.sql as string, /WHERE r\.id = :id$/);
      assert.deepEqual(select.params.params, { id: 3 });
    });

  test("indexes a user by name, with the bio as body and the user as owner", async () => {
    const app = new Marketplace();
    app.user(9, { last_name: "", bio: null });

    await app.run("SearchIndexWorker", ["user", 9]);

    assert.deepEqual(app.index.get("user:9"), { record_type: "user", record_id: 9,
      owner_id: 9, title: "Grace", body: "" });
  });

  const gone: [string, string, Row, string][] = [
    ["an inactive service", "service", { status: "paused" }, "is paused, not active"],
    ["a service of a deleted owner", "service", { deleted_at: "2026-01-01T00:00:00Z" },
      "belongs to a deleted user"],
    ["a deleted user", "user", { deleted_at: "2026-01-01T00:00:00Z" }, "is deleted"],
    ["a user without a name", "user", { first_name: " ", last_name: "" },
      "has no title or name"],
  ];
  for (const [what, type, values, reason] of gone) {
    test(`removes ${what} from the index`, async () => {
      const app = new Marketplace();
      if (type === "service") app.service(4, values);
      else app.user(4, values);
      app.index.set(`${type}:4`, {});

      const done = await app.run("SearchIndexWorker", [type, 4]);

      assert.deepEqual(done.value, { record_type: type, record_id: 4, action: "removed",
        reason, was_indexed: true });
      assert.equal(app.index.size, 0);
      assert.equal(app.calls("search", "upsert").length, 0);
    });
  }

  test("removes a record that no longer exists, indexed or not", async () => {
    const app = new Marketplace();

    const done = await app.run("SearchIndexWorker", ["service", 404]);

    assert.deepEqual(done.value, { record_type: "service", record_id: 404, action: "removed",
      reason: "does not exist", was_indexed: false });
    assert.deepEqual(app.calls("search", "remove")[0].params,
      { record_type: "service", record_id: 404 });
  });

  test("cuts a long body to what the search service takes", async () => {
    const app = new Marketplace();
    app.service(1, { description: "x".repeat(MAX_BODY_CHARS + 10) });

    await app.run("SearchIndexWorker", ["service", 1]);

    assert.equal((app.index.get("service:1")?.body as string).length, MAX_BODY_CHARS);
  });

  const badArgs: [string, unknown[], string][] = [
    ["another record type", ["talk", 1], "record_type"],
    ["a plural record type", ["services", 1], "record_type"],
    ["a zero id", ["service", 0], "record_id"],
    ["a string id", ["service", "1"], "record_id"],
    ["a fractional id", ["user", 1.5], "record_id"],
  ];
  for (const [what, args, argument] of badArgs) {
    test(`${what} is permanent and named`, async () => {
      const app = new Marketplace();
      const done = await app.run("SearchIndexWorker", args);
      assertPermanent(done, argument);
      assert.equal(app.host.calls.length, 0);
    });
  }
});

describe("SearchBulkIndexWorker", () => {
  test("a full batch indexes its records and enqueues the batch after its last id",
    async () => {
      const app = new Marketplace();
      for (const id of [2, 5, 8, 11]) app.service(id, id === 5 ? { status: "deleted" } : {});

      const done = await app.run("SearchBulkIndexWorker", ["service", 0, 3]);

      assert.deepEqual(done.value, { record_type: "service", after_id: 0, indexed: 2,
        removed: 1, orphans_removed: 0, done: false, next_after_id: 8,
        next_job_id: "next-1" });
      assert.deepEqual([...app.index.keys()], ["service:2", "service:8"]);
      assert.deepEqual(app.calls("jobs", "enqueue").map((c) => c.params),
        [{ worker: "SearchBulkIndexWorker", args: ["service", 8, 3] }]);
      const [select] = app.calls("db", "query");
      assert.match(select.params.sql as string, /WHERE r\.id > :after_id ORDER BY r\.id LIMIT/);
    });

  test("a short batch is the last: nothing is enqueued", async () => {
    const app = new Marketplace();
    app.user(20);
    app.user(21);

    const done = await app.run("SearchBulkIndexWorker", ["user", 8, 3]);

    assert.equal((done.value as Row).done, true);
    assert.equal((done.value as Row).next_after_id, null);
    assert.equal(app.calls("jobs", "enqueue").length, 0);
  });

  test("drops the documents of records gone from the batch's id range", async () => {
    const app = new Marketplace();
    for (const id of [1, 2, 3]) app.service(id);

    await app.run("SearchBulkIndexWorker", ["service", 0, 3]);
    await app.run("SearchBulkIndexWorker", ["service", 3, 3], "job-2");

    const [full, last] = app.calls("db", "execute").map((c) => c.params);
    assert.match(full.sql as string, /^DELETE FROM search_documents WHERE record_type = /);
    assert.match(full.sql as string,
      /record_id <= :last_id AND NOT EXISTS \(SELECT 1 FROM services/);
    assert.deepEqual(full.params, { record_type: "service", after_id: 0, last_id: 3 });
    assert.doesNotMatch(last.sql as string, /last_id/);
    assert.deepEqual(last.params, { record_type: "service", after_id: 3 });
  });

  test("a retry of a job that enqueued its follow-up does not enqueue it again", async () => {
    const app = new Marketplace();
    for (const id of [1, 2]) app.service(id);

    await app.run("SearchBulkIndexWorker", ["service", 0, 2], "job-b");
    const again = await app.run("SearchBulkIndexWorker", ["service", 0, 2], "job-b");
    await app.run("SearchBulkIndexWorker", ["service", 0, 2], "job-c");

    assert.equal((again.value as Row).next_job_id, "next-1");
    assert.equal(app.calls("jobs", "enqueue").length, 2);
    assert.equal(app.host.redis.ttls.get("search:bulk:next:job-b"), 86_400);
  });

  const badArgs: [unknown[], string][] = [
    [["talk", 0, 10], "record_type"],
    [["service", -1, 10], "after_id"],
    [["service", null, 10], "after_id"],
    [["service", 0, 0], "batch_size"],
    [["service", 0, 1001], "batch_size"],
  ];
  for (const [args, argument] of badArgs) {
    test(`${JSON.stringify(args)} is permanent and names ${argument}`, async () => {
      const app = new Marketplace();
      const done = await app.run("SearchBulkIndexWorker", args);
      assertPermanent(done, argument);
    });
  }

  test("the batch size rule says the range", async () => {
    const done = await new Marketplace().run("SearchBulkIndexWorker", ["user", 0, 5000]);
    assert.equal(done.error?.message, "batch_size must be a whole number from 1 to 1000, "
      + "received 5000");
  });
});

describe("SearchRemoveWorker", () => {
  test("removes the document, and removing a missing one is fine", async () => {
    const app = new Marketplace();
    app.index.set("user:3", {});

    const first = await app.run("SearchRemoveWorker", ["user", 3]);
    const second = await app.run("SearchRemoveWorker", ["user", 3]);

    assert.deepEqual(first.value, { record_type: "user", record_id: 3, removed: true });
    assert.deepEqual(second.value, { record_type: "user", record_id: 3, removed: false });
    assert.equal(app.calls("db", "query").length, 0);
  });

  test("another record type is permanent", async () => {
    assertPermanent(await new Marketplace().run("SearchRemoveWorker", [null, 3]), "record_type");
  });
});
