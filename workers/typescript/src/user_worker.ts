// User workers (shared/WORKERS.md, "TypeScript: users"): deletion, onboarding, payments,
// listings. SocialFriendsWorker lives in social_worker.ts, the payment in payments.ts and
// the deletion in destroy_user.ts; this module registers the four.

import type { JsonObject } from "./runtime/args";
import { shown } from "./runtime/args";
import type { Row } from "./runtime/db";
import { constraintViolation, execute, numberOf, query, rowCountMismatch, transaction }
  from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { PermanentError, defineWorker } from "./runtime/worker";
import { destroyUser } from "./destroy_user";
import { payingSimbi, positiveId } from "./payments";

// The Simbi bonus of each onboarding milestone, paid once per user by the house. The
// larger ones reward what brings the marketplace trades: a listed service, a first trade.
export const MILESTONE_BONUS_SIMBI: Readonly<Record<string, number>> = {
  profile_completed: 10,
  first_service: 25,
  first_message: 5,
  first_review: 10,
  first_trade: 50,
};

const USER_SQL = "SELECT id, first_name, deleted_at FROM users WHERE id = :id";
const MILESTONE_SQL = "INSERT INTO milestones (user_id, kind) VALUES (:user_id, :kind) "
  + "ON CONFLICT (user_id, kind) DO NOTHING";
const BONUS_SQL = "INSERT INTO simbi_transactions "
  + "(kind, from_user_id, to_user_id, amount, reason, idempotency_key) "
  + "VALUES ('bonus', NULL, :user_id, :amount, :reason, :key) RETURNING id";
const CREDIT_SQL = "UPDATE users SET simbi_balance = simbi_balance + :amount "
  + "WHERE id = :user_id AND deleted_at IS NULL RETURNING simbi_balance";

/** The active user, or a skip that says why there is none. */
async function activeUser(ctx: JobContext, id: number): Promise<Row> {
  const user = (await query(ctx, USER_SQL, { id }))[0];
  if (user === undefined) ctx.skip(`user ${id} does not exist`);
  if (user.deleted_at !== null && user.deleted_at !== undefined) ctx.skip(`user ${id} is deleted`);
  return user;
}

function milestoneOf(action: unknown): string {
  if (typeof action === "string" && Object.hasOwn(MILESTONE_BONUS_SIMBI, action)) return action;
  const known = Object.keys(MILESTONE_BONUS_SIMBI).join(", ");
  throw new PermanentError(`action must be one of ${known}, received ${shown(action)}`);
}

/** The milestone row, the bonus ledger row and the credit: one unit. */
export function milestoneStatements(userId: number, kind: string) {
  const amount = MILESTONE_BONUS_SIMBI[kind];
  const key = `quickster:${userId}:${kind}`;
  return [
    // DO NOTHING leaves 0 rows when the milestone is there: expect_rows turns that into a
    // rollback, so a second run pays nothing (also one waiting on the first's row).
    { sql: MILESTONE_SQL, params: { user_id: userId, kind }, expect_rows: 1,
      label: "milestone" },
    { sql: BONUS_SQL, params: { user_id: userId, amount, reason: `milestone ${kind}`, key },
      expect_rows: 1, label: "bonus" },
    { sql: CREDIT_SQL, params: { user_id: userId, amount }, expect_rows: 1, label: "credit" },
  ];
}

export async function quickster(
  ctx: JobContext, userIdArg: unknown, action: unknown,
): Promise<JsonObject> {
  const userId = positiveId("user_id", userIdArg);
  const kind = milestoneOf(action);
  await activeUser(ctx, userId);

  let results;
  try {
    results = await transaction(ctx, milestoneStatements(userId, kind));
  } catch (err) {
    if (rowCountMismatch(err, "milestone")) ctx.skip(`user ${userId} reached ${kind} before`);
    // The user was deleted (credit) or removed (a foreign key) since the read above.
    if (rowCountMismatch(err, "credit") || constraintViolation(err)) await activeUser(ctx, userId);
    throw err;
  }

  const [, bonus, credit] = results;
  return { user_id: userId, milestone: kind, bonus: MILESTONE_BONUS_SIMBI[kind],
    transaction_id: bonus?.rows?.[0]?.id ?? null,
    balance: numberOf(credit?.rows?.[0], "simbi_balance") };
}

// FriendNewListingWorker: the once-per-recipient claim is a lease, as in the Ruby email
// workers (workers/ruby/runtime/email.rb): a claim without sent_at whose run died before
// enqueueing lapses after LEASE_SECONDS and the next run takes it over.
const LEASE_SECONDS = 120;
const TITLE_CHARS = 100;

const SERVICE_SQL = "SELECT s.id, s.title, s.status, s.user_id, u.first_name, u.deleted_at "
  + "FROM services s JOIN users u ON u.id = s.user_id WHERE s.id = :id";
// Followers, and the owner's social friends who are users; UNION lists each person once.
const RECIPIENTS_SQL = "SELECT f.follower_id AS user_id FROM follows f "
  + "JOIN users u ON u.id = f.follower_id "
  + "WHERE f.followed_id = :owner AND f.follower_id <> :owner AND u.deleted_at IS NULL "
  + "UNION SELECT c.friend_user_id AS user_id FROM social_connections c "
  + "JOIN users u ON u.id = c.friend_user_id "
  + "WHERE c.user_id = :owner AND c.friend_user_id <> :owner AND u.deleted_at IS NULL "
  + "ORDER BY user_id";
const CLAIM_SQL = "INSERT INTO notifications_sent (user_id, kind, dedupe_key) "
  + "VALUES (:user_id, 'friend_listing', :key) ON CONFLICT (dedupe_key) DO NOTHING";
const CLAIM_STATE_SQL = "SELECT sent_at FROM notifications_sent WHERE dedupe_key = :key";
const TAKE_OVER_SQL = "UPDATE notifications_sent SET created_at = CURRENT_TIMESTAMP "
  + "WHERE dedupe_key = :key AND sent_at IS NULL AND created_at < :cutoff";
const MARK_SENT_SQL = "UPDATE notifications_sent SET sent_at = CURRENT_TIMESTAMP "
  + "WHERE dedupe_key = :key";
const RELEASE_SQL = "DELETE FROM notifications_sent WHERE dedupe_key = :key AND sent_at IS NULL";

type Claim = "ours" | "sent" | "busy";

/** Retryable: the other run's claim is either sent or lapsed by the next attempt. */
class ClaimBusy extends Error {}

/** "YYYY-MM-DD HH:MM:SS+00:00": SQLite compares created_at as this text, PostgreSQL parses. */
export function leaseCutoff(nowMs: number): string {
  const iso = new Date(nowMs - LEASE_SECONDS * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}+00:00`;
}

async function claim(ctx: JobContext, userId: number, key: string): Promise<Claim> {
  if (await execute(ctx, CLAIM_SQL, { user_id: userId, key }) > 0) return "ours";
  const row = (await query(ctx, CLAIM_STATE_SQL, { key }))[0];
  if (row !== undefined && row.sent_at !== null) return "sent";
  const cutoff = leaseCutoff(Date.now());
  if (row !== undefined && await execute(ctx, TAKE_OVER_SQL, { key, cutoff }) > 0) return "ours";
  return "busy";
}

async function pushOnce(
  ctx: JobContext, userId: number, key: string, push: unknown[],
): Promise<Claim> {
  const held = await claim(ctx, userId, key);
  if (held !== "ours") return held;
  try {
    await ctx.host.call("jobs", "enqueue", { worker: "SendPushWorker", args: [userId, ...push] });
  } catch (err) {
    // Give the claim back, so that the retry of this job pushes to this recipient.
    await execute(ctx, RELEASE_SQL, { key }).catch(() => undefined);
    throw err;
  }
  await execute(ctx, MARK_SENT_SQL, { key });
  return "ours";
}

async function activeService(ctx: JobContext, serviceId: number): Promise<Row> {
  const service = (await query(ctx, SERVICE_SQL, { id: serviceId }))[0];
  if (service === undefined) ctx.skip(`service ${serviceId} does not exist`);
  if (service.status !== "active") {
    ctx.skip(`service ${serviceId} is ${shown(service.status)}, not active`);
  }
  if (service.deleted_at !== null && service.deleted_at !== undefined) {
    ctx.skip(`the owner of service ${serviceId} is deleted`);
  }
  return service;
}

export async function friendNewListing(
  ctx: JobContext, serviceIdArg: unknown,
): Promise<JsonObject> {
  const serviceId = positiveId("service_id", serviceIdArg);
  const service = await activeService(ctx, serviceId);
  const owner = Number(service.user_id);

  const title = [...String(service.title)].slice(0, TITLE_CHARS).join("");
  const message = `${String(service.first_name)} listed a new service: ${title}`;
  const data = { type: "friend_new_listing", service_id: serviceId };
  const recipients = await query(ctx, RECIPIENTS_SQL, { owner });

  const counts: Record<Claim, number> = { ours: 0, sent: 0, busy: 0 };
  for (const row of recipients) {
    const userId = Number(row.user_id);
    const key = `friend_listing:${serviceId}:${userId}`;
    counts[await pushOnce(ctx, userId, key, ["followers", message, data])] += 1;
  }
  if (counts.busy > 0) {
    // Another run holds those claims right now: come back when it has pushed or died.
    throw new ClaimBusy(`${counts.busy} recipient(s) of service ${serviceId} are being `
      + "notified by another run; retrying");
  }
  return { service_id: serviceId, recipients: recipients.length, pushed: counts.ours,
    already_pushed: counts.sent };
}

defineWorker("DestroyUserWorker", 1, destroyUser);
defineWorker("QuicksterWorker", 2, quickster);
defineWorker("PayingSimbiWorker", 5, payingSimbi);
defineWorker("FriendNewListingWorker", 1, friendNewListing);
