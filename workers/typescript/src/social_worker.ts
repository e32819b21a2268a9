// SocialFriendsWorker (shared/WORKERS.md, "TypeScript: users"): a user's friend list from
// the social host service, stored as social_connections, each friend who is a user linked.
// NOTE: the access token is the user's credential. It goes to the host call and nowhere
// else: no message, log line or error here quotes it (queues.yaml lists it in secret_args,
// so the host blanks it from job listings and from error texts as well).

import type { JsonObject } from "./runtime/args";
import { isJsonObject, shown } from "./runtime/args";
import type { Statement } from "./runtime/db";
import { constraintViolation, query, transaction } from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { PermanentError, defineWorker } from "./runtime/worker";
import { positiveId } from "./payments";

export const PROVIDERS = ["facebook", "google"] as const;
export type Provider = typeof PROVIDERS[number];

// Friends per INSERT and per IN list: 5 bound parameters a row keep a statement at 500,
// well under SQLite's and PostgreSQL's limits.
export const BATCH = 100;
// db.transaction takes at most this many statements (simbi_workers/services/db.py).
const STATEMENTS_PER_TRANSACTION = 100;
// The columns' sizes in simbi_workers/store/schema.py (PostgreSQL refuses longer values).
const UID_CHARS = 128;
const NAME_CHARS = 200;

const USER_SQL = "SELECT id, deleted_at FROM users WHERE id = :id";
const UPSERT_COLUMNS = "(user_id, provider, friend_uid, friend_name, friend_user_id)";
const UPSERT_CONFLICT = " ON CONFLICT (user_id, provider, friend_uid) DO UPDATE SET "
  + "friend_name = excluded.friend_name, friend_user_id = excluded.friend_user_id";

export interface Friend {
  uid: string;
  name: string | null;
}

function providerOf(value: unknown): Provider {
  if (PROVIDERS.includes(value as Provider)) return value as Provider;
  throw new PermanentError(`provider must be one of ${PROVIDERS.join(", ")}, `
    + `received ${shown(value)}`);
}

function tokenOf(value: unknown): string {
  if (typeof value === "string" && value.trim() !== "") return value;
  // What it is, never what it says: the value may be a real token.
  const kind = typeof value === "string" ? "an empty string" : value === null ? "null"
    : typeof value;
  throw new PermanentError(`access_token must be a non-empty string, received ${kind}`);
}

/** The user, or a skip when there is none to store friends for. */
async function requireUser(ctx: JobContext, userId: number): Promise<void> {
  const user = (await query(ctx, USER_SQL, { id: userId }))[0];
  if (user === undefined) ctx.skip(`user ${userId} does not exist`);
  if (user.deleted_at !== null && user.deleted_at !== undefined) {
    ctx.skip(`user ${userId} is deleted`);
  }
}

/** Code points, as the database counts them, not UTF-16 units. */
function clipped(text: string, cap: number): string {
  const chars = [...text];
  return chars.length > cap ? chars.slice(0, cap).join("") : text;
}

/** The service's list, each uid once (a repeat would hit the same row twice in one
 * INSERT, which PostgreSQL refuses), ids too long for the column left out. */
export function friendsOf(reply: unknown): { friends: Friend[]; dropped: number } {
  if (!Array.isArray(reply)) throw new Error(`social.friends answered ${shown(reply)}`);
  const byUid = new Map<string, Friend>();
  let dropped = 0;
  for (const item of reply) {
    const uid = isJsonObject(item) && typeof item.uid === "string" ? item.uid : "";
    if (uid === "" || [...uid].length > UID_CHARS) {
      dropped += 1;
      continue;
    }
    const name = typeof item.name === "string" && item.name !== ""
      ? clipped(item.name, NAME_CHARS) : null;
    if (!byUid.has(uid)) byUid.set(uid, { uid, name });
  }
  return { friends: [...byUid.values()], dropped };
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += size) {
    out.push(items.slice(start, start + size));
  }
  return out;
}

/** provider_uid -> user id, for the friends who are users (and not deleted). */
async function linkedUsers(
  ctx: JobContext, provider: Provider, uids: string[],
): Promise<Map<string, number>> {
  const linked = new Map<string, number>();
  for (const batch of chunks(uids, BATCH)) {
    // One bound parameter per id: the ids come from outside and are never spliced in.
    const params: Record<string, unknown> = { provider };
    batch.forEach((uid, index) => { params[`uid${index}`] = uid; });
    const placeholders = batch.map((_, index) => `:uid${index}`).join(", ");
    const sql = "SELECT a.provider_uid, a.user_id FROM social_accounts a "
      + "JOIN users u ON u.id = a.user_id "
      + "WHERE a.provider = :provider AND u.deleted_at IS NULL "
      + `AND a.provider_uid IN (${placeholders})`;
    for (const row of await query(ctx, sql, params)) {
      linked.set(String(row.provider_uid), Number(row.user_id));
    }
  }
  return linked;
}

/** One multi-row upsert per BATCH friends. */
export function upsertStatements(
  userId: number, provider: Provider, friends: Friend[], linked: Map<string, number>,
): Statement[] {
  return chunks(friends, BATCH).map((batch, number) => {
    const params: Record<string, unknown> = { user_id: userId, provider };
    const rows = batch.map((friend, index) => {
      params[`uid${index}`] = friend.uid;
      params[`name${index}`] = friend.name;
      params[`friend${index}`] = linked.get(friend.uid) ?? null;
      return `(:user_id, :provider, :uid${index}, :name${index}, :friend${index})`;
    });
    const sql = `INSERT INTO social_connections ${UPSERT_COLUMNS} VALUES ${rows.join(", ")}`
      + UPSERT_CONFLICT;
    return { sql, params, expect_rows: batch.length, label: `connections ${number}` };
  });
}

async function store(ctx: JobContext, userId: number, statements: Statement[]): Promise<void> {
  try {
    for (const unit of chunks(statements, STATEMENTS_PER_TRANSACTION)) {
      await transaction(ctx, unit);
    }
  } catch (err) {
    if (!constraintViolation(err)) throw err;
    // A foreign key: the user, or a linked friend, was deleted since the reads above.
    await requireUser(ctx, userId);
    throw new Error("a linked friend's account was removed while storing; a retry relinks");
  }
}

export async function socialFriends(
  ctx: JobContext, userIdArg: unknown, providerArg: unknown, tokenArg: unknown,
): Promise<JsonObject> {
  const userId = positiveId("user_id", userIdArg);
  const provider = providerOf(providerArg);
  const accessToken = tokenOf(tokenArg);
  await requireUser(ctx, userId);

  const reply = await ctx.host.call("social", "friends",
    { provider, access_token: accessToken });
  const { friends, dropped } = friendsOf(reply);
  if (dropped > 0) ctx.log(`left out ${dropped} ${provider} friend(s) without a usable id`);

  const linked = await linkedUsers(ctx, provider, friends.map((friend) => friend.uid));
  linked.forEach((friendId, uid) => { if (friendId === userId) linked.delete(uid); });
  await store(ctx, userId, upsertStatements(userId, provider, friends, linked));

  return { provider, friends: friends.length, linked: linked.size };
}

defineWorker("SocialFriendsWorker", 3, socialFriends);
