// Score workers (shared/WORKERS.md, "TypeScript: scores"). The metrics a formula may weigh
// are listed in score_metrics.ts.

import type { JsonObject } from "./runtime/args";
import { invalid } from "./runtime/args";
import type { JobContext } from "./runtime/worker";
import { PermanentError, defineWorker } from "./runtime/worker";
import type { Row } from "./runtime/db";
import { execute, query } from "./runtime/db";
import {
  changedSubjects, enqueue, loadFormula, mean2, metricsOf, positiveId, scoreOf, sqlTime,
  subjectMetrics, subjectTypeOf, upsertScores,
} from "./score_metrics";

// Subjects per query and per upsert statement: well under SQLite's 32766 bound parameters
// (two per subject) and small enough for one host reply.
export const SCORE_BATCH_SIZE = 500;

export async function score(
  ctx: JobContext, subjectId: unknown, subjectType: unknown, formulaId: unknown,
): Promise<number> {
  const id = positiveId("subject_id", subjectId);
  const type = subjectTypeOf(subjectType);
  const formulaNumber = positiveId("formula_id", formulaId);

  const formula = await loadFormula(ctx, formulaNumber, type);
  if (formula === null) {
    throw new PermanentError(`formula_id ${formulaNumber}: no such score formula`);
  }
  const metrics = await subjectMetrics(ctx, type, id);
  if (metrics === null) ctx.skip(`${type} ${id} does not exist or is deleted`);

  const value = scoreOf(formula, metrics);
  await upsertScores(ctx, formula, [[id, value]], sqlTime(Date.now()));
  return value;
}

// Keyset pagination (id > the last id seen) rather than OFFSET: each page is an index range
// scan, and subjects that change during the run cannot shift a page.
export async function scoreChanged(
  ctx: JobContext, subjectType: unknown, formulaId: unknown,
): Promise<number> {
  const type = subjectTypeOf(subjectType);
  const formulaNumber = positiveId("formula_id", formulaId);
  // Taken before the first read: whatever changes during the run is caught by the next one.
  const startedAt = sqlTime(Date.now());

  const formula = await loadFormula(ctx, formulaNumber, type);
  // A skip, not a failure: the hourly cron entry runs on databases without the formula
  // too (a fresh checkout), and a dead job every hour would say nothing new.
  if (formula === null) ctx.skip(`no score formula ${formulaNumber} to recompute`);

  let scored = 0;
  for (let after = 0; ;) {
    const rows = await changedSubjects(ctx, type, formula.lastRunAt, after, SCORE_BATCH_SIZE);
    if (rows.length === 0) break;
    const values = rows.map((row): [number, number] =>
      [Number(row.id), scoreOf(formula, metricsOf(type, row))]);
    await upsertScores(ctx, formula, values, startedAt);
    scored += rows.length;
    after = values[values.length - 1][0];
    if (rows.length < SCORE_BATCH_SIZE) break;
  }

  await execute(ctx, "UPDATE score_formulas SET last_run_at = :started_at WHERE id = :id",
    { started_at: startedAt, id: formula.id });
  ctx.log(`scored ${scored} ${type}(s) with formula ${formula.id} changed since `
    + `${formula.lastRunAt ?? "the beginning"}`);
  return scored;
}

const SERVICE_SQL = "SELECT id, user_id, rating_average, rating_count FROM services "
  + "WHERE id = :id";
// CAST: PostgreSQL sums a bigint into a numeric, which does not travel as JSON.
const RATINGS_SQL = "SELECT COUNT(*) AS count, CAST(COALESCE(SUM(rating), 0) AS BIGINT) "
  + "AS total FROM reviews WHERE service_id = :id";
const STORE_RATING_SQL = "UPDATE services SET rating_average = :average, "
  + "rating_count = :count, updated_at = :now WHERE id = :id";

export async function updateRating(ctx: JobContext, serviceId: unknown): Promise<JsonObject> {
  const id = positiveId("service_id", serviceId);
  const [service] = await query(ctx, SERVICE_SQL, { id });
  if (service === undefined) ctx.skip(`service ${id} does not exist`);

  const [ratings] = await query(ctx, RATINGS_SQL, { id });
  const count = Number(ratings.count);
  const average = mean2(Number(ratings.total), count);
  // Unchanged values are not written again, so that updated_at (which makes
  // ScoreQueryProcessorWorker rescore the service) moves only on a real change.
  const changed = average !== service.rating_average || count !== service.rating_count;
  if (changed) {
    await execute(ctx, STORE_RATING_SQL, { id, average, count, now: sqlTime(Date.now()) });
  }

  const owner = Number(service.user_id);
  await enqueue(ctx, "DisplayScoreWorker", [owner]);
  return { service_id: id, rating_average: average, rating_count: count, changed };
}

// Strength (an integer): profile completeness (at most 100) plus capped points for what
// the user did, so that one kind of activity cannot carry a profile on its own.
//   first name 10, last name 10, phone 20, bio 20, avatar 40
//   25 per active service, counting at most 10          (at most 250)
//   10 per review received on their services, at most 30 (at most 300)
//   15 per trade (a transfer from or to them), at most 20 (at most 300)
//   2 per follower, at most 100                          (at most 200)
const PROFILE_POINTS = { first_name: 10, last_name: 10, phone: 20, bio: 20, avatar: 40 };
const ACTIVITY_POINTS = {
  services: { each: 25, most: 10 },
  reviews: { each: 10, most: 30 },
  trades: { each: 15, most: 20 },
  followers: { each: 2, most: 100 },
};
type Activity = Record<keyof typeof ACTIVITY_POINTS, number>;

export const TIERS = ["bronze", "silver", "gold", "platinum"] as const;
export type Tier = (typeof TIERS)[number];
// The least strength of each tier after bronze.
const TIER_FLOORS: [Tier, number][] = [["platinum", 700], ["gold", 300], ["silver", 100]];

export function tierFor(strength: number): Tier {
  return TIER_FLOORS.find(([, floor]) => strength >= floor)?.[0] ?? "bronze";
}

function filled(field: string, value: unknown): boolean {
  // The avatar is a JSON column: SQLite returns its text, "null" or "{}" when cleared.
  if (field === "avatar" && typeof value === "string") return !["", "null", "{}"].includes(value);
  if (typeof value === "string") return value.trim() !== "";
  return typeof value === "object" && value !== null && Object.keys(value).length > 0;
}

export function strengthOf(user: Row, activity: Activity): number {
  let strength = 0;
  for (const [field, points] of Object.entries(PROFILE_POINTS)) {
    if (filled(field, user[field])) strength += points;
  }
  for (const [kind, { each, most }] of Object.entries(ACTIVITY_POINTS)) {
    strength += each * Math.min(activity[kind as keyof Activity], most);
  }
  return strength;
}

const USER_SQL = "SELECT id, first_name, last_name, phone, bio, avatar, strength, tier "
  + "FROM users WHERE id = :id AND deleted_at IS NULL";
const ACTIVITY_SQL = "SELECT "
  + "(SELECT COUNT(*) FROM services WHERE user_id = :id AND status = 'active') AS services, "
  + "(SELECT COUNT(*) FROM reviews r JOIN services s ON s.id = r.service_id "
  + "WHERE s.user_id = :id) AS reviews, "
  + "(SELECT COUNT(*) FROM simbi_transactions WHERE kind = 'transfer' "
  + "AND (from_user_id = :id OR to_user_id = :id)) AS trades, "
  + "(SELECT COUNT(*) FROM follows WHERE followed_id = :id) AS followers";
// Compare-and-set on the tier read: of two runs at once only one sees its rise stored, so
// only one sends the push.
const STORE_STRENGTH_SQL = "UPDATE users SET strength = :strength, tier = :tier, "
  + "updated_at = :now WHERE id = :id AND tier = :old_tier AND deleted_at IS NULL";

function tierRank(tier: unknown): number {
  // A tier this code does not know counts as bronze: any real tier is then a rise or equal.
  return Math.max(TIERS.indexOf(tier as Tier), 0);
}

function capitalized(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

export async function recalculateStrength(ctx: JobContext, userId: unknown) {
  const id = positiveId("user_id", userId);
  const [user] = await query(ctx, USER_SQL, { id });
  if (user === undefined) ctx.skip(`user ${id} does not exist or is deleted`);

  const [counts] = await query(ctx, ACTIVITY_SQL, { id });
  const activity = Object.fromEntries(Object.keys(ACTIVITY_POINTS)
    .map((kind) => [kind, Number(counts[kind])])) as Activity;
  const strength = strengthOf(user, activity);
  const tier = tierFor(strength);
  const result = { user_id: id, strength, tier, previous_tier: user.tier, pushed: false };
  if (strength === Number(user.strength) && tier === user.tier) return result;

  const params = { id, strength, tier, old_tier: user.tier, now: sqlTime(Date.now()) };
  if (await execute(ctx, STORE_STRENGTH_SQL, params) !== 1) {
    // Retryable: the next attempt reads the tier the other run stored.
    throw new Error(`user ${id} changed tier or was deleted during the run; retrying`);
  }
  if (tierRank(tier) <= tierRank(user.tier)) return result;

  // NOTE: the push is enqueued after the tier is stored; a failure between the two loses
  // it (a retry sees no rise) rather than sending it twice.
  const message = `You reached the ${capitalized(tier)} tier: your profile strength is `
    + `${strength}.`;
  const data = { tier, previous_tier: String(user.tier), strength };
  await enqueue(ctx, "SendPushWorker", [id, "account", message, data]);
  return { ...result, pushed: true };
}

const WEEK_MS = 7 * 86_400_000;
export const TOP_SIZE = 10;
// How many earners the board keeps: enough to show ranks beyond the top 10.
const BOARD_SIZE = 1000;
const WEEKLY_EARNERS_SQL = "SELECT t.to_user_id AS user_id, "
  + "CAST(SUM(t.amount) AS BIGINT) AS earned FROM simbi_transactions t "
  + "JOIN users u ON u.id = t.to_user_id "
  + "WHERE t.kind = 'transfer' AND t.created_at > :since AND u.deleted_at IS NULL "
  + "GROUP BY t.to_user_id ORDER BY earned DESC, user_id LIMIT :limit";

interface RedisCommand {
  command: string;
  keys: string[];
  args: (string | number)[];
}

interface Entry {
  userId: number;
  score: number;
}

// Each board: how to read its entries, best first, and how to tell a newcomer to its top.
const BOARDS: Record<string, {
  entries(ctx: JobContext): Promise<Entry[]>;
  message(rank: number, score: number): string;
}> = {
  weekly_earners: {
    async entries(ctx) {
      const since = sqlTime(Date.now() - WEEK_MS);
      const rows = await query(ctx, WEEKLY_EARNERS_SQL, { since, limit: BOARD_SIZE });
      return rows.map((row) => ({ userId: Number(row.user_id), score: Number(row.earned) }));
    },
    message: (rank, score) =>
      `You are #${rank} of this week's top earners, with ${score} Simbi received.`,
  },
};

function boardOf(value: unknown): string {
  if (typeof value === "string" && Object.hasOwn(BOARDS, value)) return value;
  throw invalid("board", `one of ${Object.keys(BOARDS).join(", ")}`, value);
}

function previousTop(stored: unknown): Set<number> {
  if (typeof stored !== "string") return new Set();
  try {
    const ids = JSON.parse(stored) as unknown;
    return new Set(Array.isArray(ids) ? ids.map(Number) : []);
  } catch {
    // Not ours (written by hand?): everyone in the top counts as new, the key is rewritten.
    return new Set();
  }
}

export async function notifyLeaderboard(ctx: JobContext, boardName: unknown) {
  const name = boardOf(boardName);
  const board = BOARDS[name];
  const key = `leaderboard:${name}`;
  const topKey = `${key}:top${TOP_SIZE}`;

  const entries = await board.entries(ctx);
  const top = entries.slice(0, TOP_SIZE);
  const before = previousTop(await ctx.host.call("redis", "call",
    { command: "GET", keys: [topKey], args: [] }));

  // NOTE: pushes go out before the new top is stored: a failure in between sends them
  // again on the retry instead of never.
  const newcomers = top.map((entry, i) => ({ ...entry, rank: i + 1 }))
    .filter((entry) => !before.has(entry.userId));
  for (const { userId, rank, score: points } of newcomers) {
    const push = [userId, "leaderboard", board.message(rank, points),
      { board: name, rank, score: points }];
    await enqueue(ctx, "SendPushWorker", push);
  }

  // One MULTI: readers see the old board or the new one, never a half-built one.
  const members = entries.flatMap((entry) => [entry.score, String(entry.userId)]);
  const commands: RedisCommand[] = [{ command: "DEL", keys: [key], args: [] }];
  if (members.length > 0) commands.push({ command: "ZADD", keys: [key], args: members });
  const topIds = JSON.stringify(top.map((entry) => entry.userId));
  commands.push({ command: "SET", keys: [topKey], args: [topIds] });
  await ctx.host.call("redis", "multi", { commands });

  return top.map((entry, i) => ({ rank: i + 1, user_id: entry.userId, score: entry.score }));
}

defineWorker("ScoreWorker", 3, score);
defineWorker("ScoreQueryProcessorWorker", 2, scoreChanged);
defineWorker("UpdateRatingWorker", 1, updateRating);
defineWorker("RecalculateStrengthWorker", 1, recalculateStrength);
defineWorker("NotifyLeaderboardWorker", 1, notifyLeaderboard);
