// DestroyUserWorker (shared/WORKERS.md, "TypeScript: users"): a user's personal data goes,
// in this order:
// 1. Read the keys of the user's stored files (avatar sizes, uploads, image variants) and
//    the ids of their services, and write them to a Redis list, `destroy_user:pending:<id>`
//    ("file:<key>", "service:<id>"), BEFORE the rows go.
// 2. One db.transaction deletes every row that names the user. Ledger rows stay with the
//    user detached (from_user_id / to_user_id NULL), so the other side's history still
//    explains their balance. The destroyed user's remaining balance is forfeited: it
//    leaves the sum of balances with the users row, and the result reports it.
// 3. After the commit: the files on the list, the Redis analytics naming the user or their
//    services (analytics_worker.ts, score_worker.ts: event stream, display score, response
//    times, service stats, leaderboard members and stored top-10 lists), the Mixpanel
//    profile; the list itself last.
// Why the list: the files can only be deleted after the commit (a rollback must not leave
// a user without their avatar), and after the commit no row leads to them any more. A run
// that dies between the two (a crash, a storage outage) leaves the keys in Redis, and its
// retry, or any later run for the same id, finds them there and finishes the job. Keeping
// them only in the job's result would lose them with the process.
// Every step finds nothing the second time, so a rerun (or a missing user) succeeds.

import type { JsonObject } from "./runtime/args";
import { isJsonObject } from "./runtime/args";
import type { Statement } from "./runtime/db";
import { numberOf, query, transaction } from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { positiveId } from "./payments";

// Long enough for every retry of the job; a user's file keys never live in Redis forever.
const PENDING_TTL_SECONDS = 30 * 86_400;
const SCAN_COUNT = 500;

const USER_SQL = "SELECT id, avatar, simbi_balance FROM users WHERE id = :id";
const SERVICE_IDS_SQL = "SELECT id FROM services WHERE user_id = :id";
const UPLOADS_SQL = "SELECT source FROM uploads WHERE user_id = :id";
const VARIANTS_SQL = "SELECT i.variants FROM images i JOIN uploads u ON u.id = i.upload_id "
  + "WHERE u.user_id = :id";

const SERVICES = "(SELECT id FROM services WHERE user_id = :id)";
const UPLOADS = "(SELECT id FROM uploads WHERE user_id = :id)";

// Every table of simbi_workers/store/schema.py that can name a user, dependents before
// what they depend on. Rows of other people that only point at the user's services keep
// themselves and lose the pointer (talks, favors, matches of others).
const DESTROY_SQL: [string, string][] = [
  ["ledger from", "UPDATE simbi_transactions SET from_user_id = NULL WHERE from_user_id = :id"],
  ["ledger to", "UPDATE simbi_transactions SET to_user_id = NULL WHERE to_user_id = :id"],
  ["devices", "DELETE FROM devices WHERE user_id = :id"],
  ["follows", "DELETE FROM follows WHERE follower_id = :id OR followed_id = :id"],
  ["messages", "DELETE FROM messages WHERE sender_id = :id"],
  ["talk participants", "DELETE FROM talk_participants WHERE user_id = :id"],
  ["talks", `UPDATE talks SET service_id = NULL WHERE service_id IN ${SERVICES}`],
  ["comments", `DELETE FROM comments WHERE user_id = :id OR service_id IN ${SERVICES}`],
  ["compliments", "DELETE FROM compliments WHERE sender_id = :id OR receiver_id = :id"],
  ["favors", "DELETE FROM favors WHERE requester_id = :id OR asked_user_id = :id"],
  ["favors of services", `UPDATE favors SET service_id = NULL WHERE service_id IN ${SERVICES}`],
  ["favorites", `DELETE FROM favorites WHERE user_id = :id OR service_id IN ${SERVICES}`],
  ["matches", "DELETE FROM matches WHERE user_a_id = :id OR user_b_id = :id"],
  ["matches a", `UPDATE matches SET service_a_id = NULL WHERE service_a_id IN ${SERVICES}`],
  ["matches b", `UPDATE matches SET service_b_id = NULL WHERE service_b_id IN ${SERVICES}`],
  ["milestones", "DELETE FROM milestones WHERE user_id = :id"],
  ["reviews", `DELETE FROM reviews WHERE reviewer_id = :id OR service_id IN ${SERVICES}`],
  ["suggestions", "DELETE FROM suggestion_history "
    + `WHERE user_id = :id OR service_id IN ${SERVICES}`],
  ["scores", "DELETE FROM scores WHERE (subject_type = 'user' AND subject_id = :id) "
    + `OR (subject_type = 'service' AND subject_id IN ${SERVICES})`],
  ["search documents", "DELETE FROM search_documents WHERE owner_id = :id "
    + "OR (record_type = 'user' AND record_id = :id) "
    + `OR (record_type = 'service' AND record_id IN ${SERVICES})`],
  ["services", "DELETE FROM services WHERE user_id = :id"],
  // A friend's row about the user holds the user's name at the provider: it goes too,
  // rather than staying with friend_user_id NULL.
  ["social connections",
    "DELETE FROM social_connections WHERE user_id = :id OR friend_user_id = :id"],
  ["social accounts", "DELETE FROM social_accounts WHERE user_id = :id"],
  ["preferences", "DELETE FROM notification_preferences WHERE user_id = :id"],
  ["notifications sent", "DELETE FROM notifications_sent WHERE user_id = :id"],
  ["images", `DELETE FROM images WHERE upload_id IN ${UPLOADS}`],
  ["uploads", "DELETE FROM uploads WHERE user_id = :id"],
  ["user", "DELETE FROM users WHERE id = :id"],
];

/** The Redis keys that hold only this user's analytics (see analytics_worker.ts). */
export function analyticsKeys(userId: number): string[] {
  return [`events:user:${userId}`, `display_score:${userId}`, `response_time:${userId}`];
}

export function pendingListKey(userId: number): string {
  return `destroy_user:pending:${userId}`;
}

export function destroyStatements(userId: number): Statement[] {
  return DESTROY_SQL.map(([label, sql]) => ({ sql, params: { id: userId }, label }));
}

/** SQLite hands JSON columns over as text, PostgreSQL as objects. */
function jsonValue(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return null;
  }
}

/** Storage keys are relative paths; an upload's source may be an http(s) URL instead. */
function storageKey(value: unknown): string | null {
  if (typeof value !== "string" || value === "" || /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    return null;
  }
  return value;
}

/** avatar is {"400": key, ...}; variants is {"original": {"key", ...}, ...}. */
export function fileKeys(avatar: unknown, sources: unknown[], variants: unknown[]): string[] {
  const keys = new Set<string>();
  const add = (value: unknown) => {
    const key = storageKey(value);
    if (key !== null) keys.add(key);
  };
  const avatarSizes = jsonValue(avatar);
  if (isJsonObject(avatarSizes)) Object.values(avatarSizes).forEach(add);
  sources.forEach(add);
  for (const image of variants.map(jsonValue)) {
    if (!isJsonObject(image)) continue;
    for (const variant of Object.values(image)) if (isJsonObject(variant)) add(variant.key);
  }
  return [...keys].sort();
}

async function redis(ctx: JobContext, command: string, keys: string[], args: unknown[] = []) {
  return ctx.host.call("redis", "call", { command, keys, args });
}

/** What the list keeps; the user's balance, or null when the users row is gone. */
async function remember(ctx: JobContext, userId: number): Promise<number | null> {
  const user = (await query(ctx, USER_SQL, { id: userId }))[0];
  const sources = (await query(ctx, UPLOADS_SQL, { id: userId })).map((row) => row.source);
  const variants = (await query(ctx, VARIANTS_SQL, { id: userId })).map((row) => row.variants);
  const services = await query(ctx, SERVICE_IDS_SQL, { id: userId });
  const entries = [...fileKeys(user?.avatar, sources, variants).map((key) => `file:${key}`),
    ...services.map((row) => `service:${Number(row.id)}`)];
  if (entries.length > 0) {
    const list = pendingListKey(userId);
    await ctx.host.call("redis", "multi", { commands: [
      { command: "RPUSH", keys: [list], args: entries },
      { command: "EXPIRE", keys: [list], args: [PENDING_TTL_SECONDS] },
    ] });
  }
  return user === undefined ? null : numberOf(user, "simbi_balance") ?? 0;
}

/** The list's entries of one kind ("file" or "service"), each once. */
async function remembered(ctx: JobContext, userId: number, kind: string): Promise<string[]> {
  const listed = await redis(ctx, "LRANGE", [pendingListKey(userId)], [0, -1]);
  const entries = Array.isArray(listed) ? listed.map(String) : [];
  const prefix = `${kind}:`;
  const values = entries.filter((e) => e.startsWith(prefix)).map((e) => e.slice(prefix.length));
  return [...new Set(values)];
}

async function deleteFiles(ctx: JobContext, userId: number): Promise<number> {
  let deleted = 0;
  for (const key of await remembered(ctx, userId, "file")) {
    const reply = await ctx.host.call("storage", "delete", { key });
    if (isJsonObject(reply) && reply.deleted === true) deleted += 1;
  }
  return deleted;
}

/** Every key matching `pattern` of one Redis type, through SCAN (never KEYS). */
async function scanKeys(ctx: JobContext, pattern: string, type: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const args = [cursor, "MATCH", pattern, "COUNT", SCAN_COUNT, "TYPE", type];
    const [next, keys] = await redis(ctx, "SCAN", [], args) as [unknown, string[]];
    found.push(...keys);
    cursor = String(next);
  } while (cursor !== "0");
  return found;
}

/** ZREM from every leaderboard, and out of the stored top-10 id lists (JSON strings). */
async function leaveLeaderboards(ctx: JobContext, userId: number): Promise<number> {
  let removed = 0;
  for (const board of await scanKeys(ctx, "leaderboard:*", "zset")) {
    removed += Number(await redis(ctx, "ZREM", [board], [String(userId)]));
  }
  for (const key of await scanKeys(ctx, "leaderboard:*", "string")) {
    const ids = jsonValue(await redis(ctx, "GET", [key]));
    if (!Array.isArray(ids) || !ids.map(Number).includes(userId)) continue;
    // NOTE: a NotifyLeaderboardWorker storing its new top at this moment may write the
    // user back; the next day's run, reading a ledger without them, drops them for good.
    await redis(ctx, "SET", [key], [JSON.stringify(ids.filter((id) => Number(id) !== userId))]);
    removed += 1;
  }
  return removed;
}

/** The stats hashes of the user's services: service_stats:<id>:total and :<day>. */
async function deleteServiceStats(ctx: JobContext, userId: number): Promise<number> {
  const services = new Set(await remembered(ctx, userId, "service"));
  if (services.size === 0) return 0;
  const keys = (await scanKeys(ctx, "service_stats:*", "hash"))
    .filter((key) => services.has(key.split(":")[1]));
  return keys.length === 0 ? 0 : Number(await redis(ctx, "DEL", keys));
}

export async function destroyUser(ctx: JobContext, userIdArg: unknown): Promise<JsonObject> {
  const userId = positiveId("user_id", userIdArg);

  const balance = await remember(ctx, userId);
  const results = await transaction(ctx, destroyStatements(userId));
  const rows = results.reduce((sum, outcome) => sum + outcome.rowcount, 0);

  const files = await deleteFiles(ctx, userId);
  const leaderboardEntries = await leaveLeaderboards(ctx, userId);
  const keys = Number(await redis(ctx, "DEL", analyticsKeys(userId)))
    + await deleteServiceStats(ctx, userId);
  await ctx.host.call("mixpanel", "people_delete", { distinct_id: String(userId) });
  // Last: until here a rerun still finds the files to delete.
  await redis(ctx, "DEL", [pendingListKey(userId)]);

  if (balance === null) ctx.log(`user ${userId} was already gone; cleaned up what was left`);
  return { user_id: userId, destroyed: balance !== null, rows_changed: rows,
    files_deleted: files, redis_keys_deleted: keys, leaderboard_entries: leaderboardEntries,
    forfeited_balance: balance ?? 0 };
}
