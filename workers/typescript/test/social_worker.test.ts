import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { HostError } from "../src/runtime/host";
import type { DoneMessage, JobMessage } from "../src/runtime/protocol";
import { runJob } from "../src/runtime/worker";
import type { Friend } from "../src/social_worker";
import { BATCH, friendsOf, upsertStatements } from "../src/social_worker";
import type { RecordedCall } from "./helpers";
import { FakeHost } from "./helpers";

type Row = Record<string, unknown>;

const TOKEN = "EAAGm0PX4ZCpsBAKZCs3cr3tT0k3n";

function job(args: unknown[]): JobMessage {
  return { type: "job", job_id: "job-1", worker: "SocialFriendsWorker", args, attempt: 1 };
}

/** Users, their social accounts and a friend list behind the db and social calls. */
class Network {
  users: Row[] = [{ id: 7, deleted_at: null }];
  accounts: Row[] = [{ provider: "facebook", provider_uid: "12", user_id: 9 }];
  friends: unknown = [{ uid: "11", name: "Ada Lovelace" }, { uid: "12", name: "Alan Turing" }];
  failStore: HostError | null = null;
  host = new FakeHost((call) => this.answer(call));

  calls(service: string, method: string): RecordedCall[] {
    return this.host.calls.filter((c) => c.service === service && c.method === method);
  }

  /** Runs the job with stderr captured, so a test can check what the child logged. */
  async run(args: unknown[]): Promise<{ done: DoneMessage; logged: string }> {
    let logged = "";
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => { logged += chunk; return true; }) as never;
    try {
      return { done: await runJob(job(args), this.host), logged };
    } finally {
      process.stderr.write = write;
    }
  }

  private answer({ service, method, params }: RecordedCall): unknown {
    if (service === "social" && method === "friends") return this.friends;
    if (service === "db" && method === "transaction") {
      if (this.failStore !== null) throw this.failStore;
      return { results: [] };
    }
    if (service === "db" && method === "query") return { rows: this.select(params) };
    throw new Error(`unexpected call ${service}.${method}`);
  }

  private select({ sql, params }: Row): Row[] {
    const bound = params as Row;
    if (String(sql).startsWith("SELECT id, deleted_at FROM users")) {
      return this.users.filter((user) => user.id === bound.id);
    }
    const uids = Object.entries(bound).filter(([k]) => k.startsWith("uid")).map(([, v]) => v);
    return this.accounts.filter((a) => a.provider === bound.provider
      && uids.includes(a.provider_uid));
  }
}

function assertPermanent(done: DoneMessage, pattern: RegExp): void {
  assert.equal(done.error?.class, "PermanentError");
  assert.equal(done.error?.retryable, false);
  assert.match(done.error?.message ?? "", pattern);
}

describe("SocialFriendsWorker", () => {
  test("stores every friend and links the one who is a user", async () => {
    const network = new Network();
    const { done, logged } = await network.run([7, "facebook", TOKEN]);

    assert.deepEqual(done.value, { provider: "facebook", friends: 2, linked: 1 });
    assert.deepEqual(network.calls("social", "friends")[0].params,
      { provider: "facebook", access_token: TOKEN });
    const [lookup] = network.calls("db", "query").slice(1);
    assert.deepEqual(lookup.params.params, { provider: "facebook", uid0: "11", uid1: "12" });
    const [stored] = network.calls("db", "transaction");
    const [upsert] = stored.params.statements as Row[];
    assert.deepEqual(upsert.params, { user_id: 7, provider: "facebook",
      uid0: "11", name0: "Ada Lovelace", friend0: null,
      uid1: "12", name1: "Alan Turing", friend1: 9 });
    assert.equal(upsert.expect_rows, 2);
    assert.match(String(upsert.sql), /ON CONFLICT \(user_id, provider, friend_uid\) DO UPDATE/);
    assert.ok(!logged.includes(TOKEN));
  });

  test("a user with no friends stores nothing and reads no accounts", async () => {
    const network = new Network();
    network.friends = [];
    const { done } = await network.run([7, "google", TOKEN]);

    assert.deepEqual(done.value, { provider: "google", friends: 0, linked: 0 });
    assert.equal(network.calls("db", "query").length, 1);
    assert.equal(network.calls("db", "transaction").length, 0);
  });

  test("a missing or deleted user is skipped before the provider is asked", async () => {
    const network = new Network();
    network.users = [{ id: 8, deleted_at: "2026-12-01T00:00:00+00:00" }];

    const missing = await network.run([7, "facebook", TOKEN]);
    const deleted = await network.run([8, "facebook", TOKEN]);

    assert.equal(missing.done.skipped, "user 7 does not exist");
    assert.equal(deleted.done.skipped, "user 8 is deleted");
    assert.equal(network.calls("social", "friends").length, 0);
  });

  test("another provider is permanent and the message lists both", async () => {
    const { done } = await new Network().run([7, "myspace", TOKEN]);
    assertPermanent(done, /^provider must be one of facebook, google, received "myspace"$/);
  });

  const badTokens: [unknown, string][] = [["", "an empty string"], [42, "number"],
    [null, "null"], [{ token: TOKEN }, "object"]];
  for (const [token, kind] of badTokens) {
    test(`an access_token that is ${kind} is permanent and never quoted`, async () => {
      const { done } = await new Network().run([7, "google", token]);
      const rule = `^access_token must be a non-empty string, received ${kind}$`;
      assertPermanent(done, new RegExp(rule));
      assert.ok(!JSON.stringify(done).includes(TOKEN));
    });
  }

  test("a bad user_id is permanent and named", async () => {
    const { done } = await new Network().run(["7", "facebook", TOKEN]);
    assertPermanent(done, /^user_id must be a positive whole number id, received "7"$/);
  });

  test("an expired token ends the job with the host's permanent InvalidToken", async () => {
    const network = new Network();
    const error = new HostError("InvalidToken",
      "social: the facebook API refused the friend list (status 400); expired", false);
    network.host = new FakeHost((call) => {
      if (call.service === "social") throw error;
      return { rows: [{ id: 7, deleted_at: null }] };
    });
    const { done, logged } = await network.run([7, "facebook", TOKEN]);

    assert.equal(done.error?.class, "InvalidToken");
    assert.equal(done.error?.retryable, false);
    assert.ok(!JSON.stringify(done).includes(TOKEN) && !logged.includes(TOKEN));
  });

  test("a user deleted while storing is a skip, a removed friend a retry", async () => {
    const network = new Network();
    network.failStore = new HostError("ConstraintViolation", "FOREIGN KEY", false);
    const retried = await network.run([7, "facebook", TOKEN]);
    assert.equal(retried.done.error?.retryable, true);
    assert.match(retried.done.error?.message ?? "", /a retry relinks/);

    network.users = [];
    const skipped = await network.run([7, "facebook", TOKEN]);
    assert.equal(skipped.done.skipped, "user 7 does not exist");
  });

  test("the friend list keeps each uid once and leaves out unusable ids", () => {
    const reply = [{ uid: "1", name: "Ada" }, { uid: "1", name: "Ada again" },
      { uid: "", name: "No id" }, { uid: "x".repeat(129), name: "Too long" },
      { uid: "2", name: "" }, { name: "uid missing" }, "not an object",
      { uid: "3", name: "é".repeat(250) }];

    const { friends, dropped } = friendsOf(reply);

    assert.deepEqual(friends.map((f) => [f.uid, f.name?.length]),
      [["1", 3], ["2", undefined], ["3", 200]]);
    assert.equal(dropped, 4);
    assert.throws(() => friendsOf({ friends: [] }), /social.friends answered/);
  });

  test("friends are upserted in batches of BATCH rows, each batch's count required", () => {
    const friends: Friend[] = Array.from({ length: 2 * BATCH + 50 },
      (_, i) => ({ uid: String(i), name: null }));
    const statements = upsertStatements(7, "google", friends, new Map([["150", 9]]));

    assert.deepEqual(statements.map((s) => s.expect_rows), [BATCH, BATCH, 50]);
    assert.equal(statements[1].params.uid50, "150");
    assert.equal(statements[1].params.friend50, 9);
    assert.equal(Object.keys(statements[2].params).length, 2 + 3 * 50);
  });
});
