// Analytics workers (shared/WORKERS.md, "TypeScript: analytics").

import { createHash } from "node:crypto";

import type { JsonObject } from "./runtime/args";
import { invalid, isJsonObject, nonEmptyString, objectOrNull } from "./runtime/args";
import type { Row } from "./runtime/db";
import { execute, query } from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { PermanentError, defineWorker } from "./runtime/worker";
import { positiveId } from "./score_metrics";

// Mixpanel drops an event whose $insert_id it has seen in the last days; it allows
// at most 36 characters from [A-Za-z0-9-].
const INSERT_ID_LENGTH = 32;
// The mixpanel service fills these from its parameters and refuses them in properties.
const RESERVED_PROPERTIES = ["token", "distinct_id", "$insert_id"];
const STREAM_CAP = 1000;
// How long a job's idempotency markers live: longer than its retries should span
// (WORKERS.md: retry 5). A rerun after that counts again.
const MARKER_TTL_SECONDS = 86_400;
const USER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
// 10000-01-01T00:00:00Z: later times have no 4-digit ISO year.
const MAX_UNIX_SECONDS = 253_402_300_800;
// Groups: year, month, day, then the optional time and, within it, the optional zone.
const ISO_8601 = new RegExp("^(\\d{4})-(\\d{2})-(\\d{2})"
  + "(T\\d{2}:\\d{2}(?::\\d{2}(?:\\.\\d+)?)?(Z|[+-]\\d{2}:?\\d{2})?)?$");

interface StoredEvent {
  jobId: string;
  userId: string;
  event: string;
  atMs: number;
  member: string;
}

interface RedisCommand {
  command: string;
  keys: string[];
  args: (string | number)[];
}

/** The same job id always gives the same insert id, so a retry is not counted twice. */
export function insertId(jobId: string): string {
  return createHash("sha256").update(jobId).digest("hex").slice(0, INSERT_ID_LENGTH);
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function distinctIdOf(value: unknown): string {
  // Mixpanel keys people by string: 7 and "7" are one person.
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "string" && value !== "") return value;
  throw invalid("distinct_id", "a non-empty string or a number", value);
}

/** The properties without `time`, which becomes the track call's own time parameter. */
function trackProperties(value: unknown): { props: JsonObject; time: number | null } {
  const { time, ...props } = objectOrNull("properties", value) ?? {};
  const reserved = RESERVED_PROPERTIES.filter((name) => name in props);
  if (reserved.length > 0) {
    const names = reserved.join(", ");
    throw new PermanentError(`properties must not set ${names}: the host sets them itself`);
  }
  if (time === undefined || time === null) return { props, time: null };
  if (typeof time === "number" && Number.isFinite(time) && time >= 0) return { props, time };
  throw invalid("properties.time", "Unix seconds", time);
}

// Mixpanel counts two events as one only when event, distinct_id, time and $insert_id all
// match (docs.mixpanel.com/reference/event-deduplication). "Now" differs between attempts,
// so the first attempt's time is kept in Redis for the retries of the same job.
async function firstAttemptSeconds(ctx: JobContext): Promise<number> {
  const key = `mixpanel:time:${ctx.jobId}`;
  const commands: RedisCommand[] = [
    { command: "SET", keys: [key], args: [nowSeconds(), "NX", "EX", MARKER_TTL_SECONDS] },
    { command: "GET", keys: [key], args: [] },
  ];
  const replies = await ctx.host.call("redis", "multi", { commands });
  const stored = Array.isArray(replies) ? Number(replies[1]) : Number.NaN;
  return Number.isSafeInteger(stored) ? stored : nowSeconds();
}

export async function trackMixpanel(
  ctx: JobContext, distinctId: unknown, event: unknown, properties: unknown,
): Promise<JsonObject> {
  const distinct = distinctIdOf(distinctId);
  const name = nonEmptyString("event", event);
  const { props, time: given } = trackProperties(properties);

  const time = given ?? await firstAttemptSeconds(ctx);
  const params = { distinct_id: distinct, event: name, properties: props, time,
    insert_id: insertId(ctx.jobId) };
  const reply = await ctx.host.call("mixpanel", "track", params);

  const delivered = isJsonObject(reply) ? reply.delivered ?? null : null;
  return { event: name, time, insert_id: params.insert_id, delivered };
}

function userIdOf(value: unknown): string {
  if (Number.isSafeInteger(value) && (value as number) > 0) return String(value);
  if (typeof value === "string" && USER_ID_PATTERN.test(value)) return value;
  throw invalid("user_id", "a positive integer or an id of letters, digits, _ and -", value);
}

function isoToMs(value: string): number | null {
  const match = ISO_8601.exec(value);
  if (match === null) return null;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  // Date.parse rolls 2026-02-30 over to March: refuse a day the month does not have.
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  // A time without a zone is UTC, not the child's local time.
  const zoned = match[4] !== undefined && match[5] === undefined ? `${value}Z` : value;
  const ms = Date.parse(zoned);
  return Number.isNaN(ms) ? null : ms;
}

/** occurred_at in Unix milliseconds, or null when the job says "now". */
function occurredAtMs(value: unknown): number | null {
  if (value === null) return null;
  if (typeof value === "number" && value >= 0 && value < MAX_UNIX_SECONDS) {
    return Math.round(value * 1000);
  }
  const ms = typeof value === "string" ? isoToMs(value) : null;
  if (ms !== null) return ms;
  throw invalid("occurred_at", "an ISO 8601 time, Unix seconds or null", value);
}

function storedMs(marker: unknown): number | null {
  const ms = Number(marker);
  return marker !== null && Number.isSafeInteger(ms) ? ms : null;
}

function seenKey(jobId: string): string {
  return `events:seen:${jobId}`;
}

function eventCommands(stored: StoredEvent, counted: boolean): RedisCommand[] {
  const stream = `events:user:${stored.userId}`;
  const day = new Date(stored.atMs).toISOString().slice(0, 10);
  const commands: RedisCommand[] = [
    { command: "ZADD", keys: [stream], args: [stored.atMs, stored.member] },
    // Keep the newest STREAM_CAP entries: rank 0 is the oldest time.
    { command: "ZREMRANGEBYRANK", keys: [stream], args: [0, -(STREAM_CAP + 1)] },
  ];
  if (counted) {
    const daily = `events:daily:${day}`;
    commands.push({ command: "HINCRBY", keys: [daily], args: [stored.event, 1] });
  }
  const marker = [stored.atMs, "EX", MARKER_TTL_SECONDS];
  commands.push({ command: "SET", keys: [seenKey(stored.jobId)], args: marker });
  return commands;
}

// Retries must not count an event twice. The ZADD is idempotent by itself (the member holds
// the job id), the HINCRBY is not, so the batch also writes a marker for the job, and a run
// that finds the marker skips the HINCRBY. Marker and counter are in one MULTI, so they are
// written together or not at all. Setting the marker first (SET NX) would lose the count
// when the batch then fails. NOTE: two runs of the same job at the same moment can still
// both count; at-least-once delivery makes that rare, and the stream stays exact.
// The marker also keeps the time a null occurred_at resolved to, so a rerun writes the
// same stream member instead of a second one.
export async function trackUserEvent(
  ctx: JobContext, userId: unknown, event: unknown, properties: unknown, occurredAt: unknown,
): Promise<JsonObject> {
  const user = userIdOf(userId);
  const name = nonEmptyString("event", event);
  const props = objectOrNull("properties", properties) ?? {};
  const givenMs = occurredAtMs(occurredAt);

  const seen = { command: "GET", keys: [seenKey(ctx.jobId)], args: [] };
  const marker = await ctx.host.call("redis", "call", seen);
  const counted = marker === null;
  const atMs = givenMs ?? storedMs(marker) ?? Date.now();

  const occurred = new Date(atMs).toISOString();
  const member = JSON.stringify(
    { event: name, properties: props, occurred_at: occurred, job_id: ctx.jobId });
  const stored = { jobId: ctx.jobId, userId: user, event: name, atMs, member };
  await ctx.host.call("redis", "multi", { commands: eventCommands(stored, counted) });
  return { stored: true, counted, occurred_at: occurred };
}

/** A timestamp as the database returns it (SQLite: "2026-03-01 10:00:00.000000", PostgreSQL:
 * ISO 8601 with an offset) in Unix milliseconds; null for NULL. A zone-less time is UTC. */
function dbTimeMs(value: unknown, column: string): number | null {
  if (value === null || value === undefined) return null;
  const ms = typeof value === "string" ? isoToMs(value.replace(" ", "T")) : null;
  if (ms !== null) return ms;
  throw new Error(`the database returned an unreadable ${column}: ${JSON.stringify(value)}`);
}

function numberIn(row: Row, column: string): number {
  const value = Number(row[column] ?? 0);
  return Number.isFinite(value) ? value : 0;
}

/** The user's row, or a skip when there is none or it is deleted: nothing to do for them. */
async function liveUser(ctx: JobContext, userId: number, sql: string): Promise<Row> {
  const [user] = await query(ctx, sql, { user_id: userId });
  if (user === undefined) ctx.skip(`user ${userId} does not exist`);
  if (user.deleted_at !== null && user.deleted_at !== undefined) {
    ctx.skip(`user ${userId} is deleted`);
  }
  return user;
}

// MixpanelUpdateUserWorker. services_count counts the services others can see (active).

const PROFILE_SQL = "SELECT u.email, u.first_name, u.last_name, u.created_at, u.tier, "
  + "u.strength, u.simbi_balance, u.deleted_at, "
  + "(SELECT COUNT(*) FROM services s WHERE s.user_id = u.id AND s.status = 'active') "
  + "AS services_count FROM users u WHERE u.id = :user_id";

/** Mixpanel's own profile properties start with `$`; $created wants ISO 8601 in UTC. */
export function profileOf(user: Row): JsonObject {
  const createdMs = dbTimeMs(user.created_at, "users.created_at");
  return {
    $email: user.email,
    $first_name: user.first_name,
    $last_name: user.last_name,
    $created: createdMs === null ? null : new Date(createdMs).toISOString().slice(0, 19),
    tier: user.tier,
    strength: numberIn(user, "strength"),
    services_count: numberIn(user, "services_count"),
    simbi_balance: numberIn(user, "simbi_balance"),
  };
}

export async function updateMixpanelUser(ctx: JobContext, userId: unknown): Promise<JsonObject> {
  const id = positiveId("user_id", userId);
  const user = await liveUser(ctx, id, PROFILE_SQL);

  const properties = profileOf(user);
  const params = { distinct_id: String(id), properties };
  const reply = await ctx.host.call("mixpanel", "people_set", params);

  const delivered = isJsonObject(reply) ? reply.delivered ?? null : null;
  return { user_id: id, properties, delivered };
}

// RecordServiceStatsWorker. Counters count things that happened (a view, a favoriting): an
// increment is a whole number from 1 to MAX_STAT_INCREMENT, never negative or zero (the
// current number of favorites is the favorites table's business, not a counter's).
// Keys: hash service_stats:<service_id>:total and, per UTC day, hash
// service_stats:<service_id>:<YYYY-MM-DD>, with one field per stat.

export const SERVICE_STATS = ["views", "favorites", "messages", "shares"];
const MAX_STAT_INCREMENT = 10_000;
// Daily counters are kept a year and a month after their last write, then Redis drops them.
const DAILY_STATS_TTL_SECONDS = 400 * 86_400;

function statOf(value: unknown): string {
  if (typeof value === "string" && SERVICE_STATS.includes(value)) return value;
  throw invalid("stat", `one of ${SERVICE_STATS.join(", ")}`, value);
}

function incrementOf(value: unknown): number {
  const n = value as number;
  if (Number.isSafeInteger(n) && n >= 1 && n <= MAX_STAT_INCREMENT) return n;
  throw invalid("increment", `a whole number from 1 to ${MAX_STAT_INCREMENT}`, value);
}

function statCommands(
  serviceId: number, stat: string, increment: number, day: string, marker: string,
): RedisCommand[] {
  const daily = `service_stats:${serviceId}:${day}`;
  return [
    { command: "HINCRBY", keys: [daily], args: [stat, increment] },
    { command: "EXPIRE", keys: [daily], args: [DAILY_STATS_TTL_SECONDS] },
    { command: "HINCRBY", keys: [`service_stats:${serviceId}:total`], args: [stat, increment] },
    { command: "SET", keys: [marker], args: [day, "EX", MARKER_TTL_SECONDS] },
  ];
}

// The same marker scheme as UserEventTrackerWorker: the counters and the job's marker are
// written in one MULTI, and a retry of a job that already counted finds the marker.
export async function recordServiceStats(
  ctx: JobContext, serviceId: unknown, stat: unknown, increment: unknown,
): Promise<JsonObject> {
  const id = positiveId("service_id", serviceId);
  const name = statOf(stat);
  const by = incrementOf(increment);

  const marker = `service_stats:seen:${ctx.jobId}`;
  const seen = await ctx.host.call("redis", "call", { command: "GET", keys: [marker], args: [] });
  if (seen !== null) return { service_id: id, stat: name, day: seen, counted: false };

  const day = new Date().toISOString().slice(0, 10);
  const commands = statCommands(id, name, by, day, marker);
  const replies = await ctx.host.call("redis", "multi", { commands }) as unknown[];
  return { service_id: id, stat: name, day, counted: true,
    daily: Number(replies[0]), total: Number(replies[2]) };
}

// ResponseTimeWorker. One hash per user, response_time:<user_id>: sum_seconds and count,
// and a field talk:<talk_id> (its seconds) for each talk counted. One key, so that
// DestroyUserWorker's DEL of it leaves nothing of the user behind.

// The first message of someone else, and the user's first message strictly after it.
// Column against column: both sides have the database's own timestamp format.
const RESPONSE_SQL = "SELECT (SELECT COUNT(*) FROM talks WHERE id = :talk_id) AS talks, "
  + "o.asked_at, (SELECT MIN(r.created_at) FROM messages r WHERE r.talk_id = :talk_id "
  + "AND r.sender_id = :user_id AND r.created_at > o.asked_at) AS replied_at "
  + "FROM (SELECT MIN(created_at) AS asked_at FROM messages "
  + "WHERE talk_id = :talk_id AND sender_id <> :user_id) o";

/** Whole seconds from the other's first message to the user's reply; a skip without one. */
async function responseSeconds(ctx: JobContext, userId: number, talkId: number) {
  const [row] = await query(ctx, RESPONSE_SQL, { user_id: userId, talk_id: talkId });
  if (row === undefined || numberIn(row, "talks") === 0) ctx.skip(`talk ${talkId} does not exist`);
  const askedMs = dbTimeMs(row.asked_at, "messages.created_at");
  if (askedMs === null) ctx.skip(`no one but user ${userId} wrote in talk ${talkId}`);
  const repliedMs = dbTimeMs(row.replied_at, "messages.created_at");
  if (repliedMs === null) ctx.skip(`user ${userId} has not replied in talk ${talkId}`);
  return Math.round((repliedMs - askedMs) / 1000);
}

function meanOf(sum: unknown, count: unknown): { count: number; mean_seconds: number | null } {
  const [total, n] = [Number(sum ?? 0), Number(count ?? 0)];
  return { count: n, mean_seconds: n > 0 ? Math.round((total / n) * 100) / 100 : null };
}

// Counted once per (user, talk), also across reruns: the talk's field is written in the
// same MULTI as the sums. NOTE: two runs for the same talk at the same
// moment can both count, as with UserEventTrackerWorker's marker.
export async function recordResponseTime(
  ctx: JobContext, userId: unknown, talkId: unknown,
): Promise<JsonObject> {
  const user = positiveId("user_id", userId);
  const talk = positiveId("talk_id", talkId);
  const [means, field] = [`response_time:${user}`, `talk:${talk}`];

  const seen = await ctx.host.call("redis", "call",
    { command: "HMGET", keys: [means], args: [field, "sum_seconds", "count"] }) as unknown[];
  if (seen[0] !== null) {
    return { user_id: user, talk_id: talk, seconds: Number(seen[0]), counted: false,
      ...meanOf(seen[1], seen[2]) };
  }

  const seconds = await responseSeconds(ctx, user, talk);
  const commands: RedisCommand[] = [
    { command: "HINCRBY", keys: [means], args: ["sum_seconds", seconds] },
    { command: "HINCRBY", keys: [means], args: ["count", 1] },
    { command: "HSET", keys: [means], args: [field, seconds] },
  ];
  const replies = await ctx.host.call("redis", "multi", { commands }) as unknown[];
  return { user_id: user, talk_id: talk, seconds, counted: true,
    ...meanOf(replies[0], replies[1]) };
}

// DisplayScoreWorker. The score is an integer 0..100, the rounded sum of five parts whose
// weights add up to 100; each part is its weight times a fraction from 0 to 1:
//   rating    35 x (mean - 1) / 4: the mean of the 1..5 ratings of reviews of any of the
//             user's services; 0 without reviews
//   reviews   15 x min(review count, 20) / 20
//   response  20 when the mean response time (ResponseTimeWorker) is an hour or less, 0 at
//             a day or more, linear between; 0 when nothing was measured
//   strength  15 x min(strength, 700) / 700 (700 is the platinum tier)
//   recency   15 x (1 - min(days since users.last_seen_at, 30) / 30); 0 when never seen
// Stored on users.display_score and cached as display_score:<user_id> for a day.

const DISPLAY_SCORE_TTL_SECONDS = 86_400;
const OWN_REVIEWS = "FROM reviews r JOIN services s ON s.id = r.service_id "
  + "WHERE s.user_id = u.id";
const SCORE_SQL = "SELECT u.strength, u.last_seen_at, u.deleted_at, "
  + `(SELECT COUNT(*) ${OWN_REVIEWS}) AS review_count, `
  + `(SELECT SUM(r.rating) ${OWN_REVIEWS}) AS rating_sum FROM users u WHERE u.id = :user_id`;

export interface ScoreInputs {
  ratingSum: number;
  reviewCount: number;
  meanResponseSeconds: number | null;
  strength: number;
  lastSeenMs: number | null;
  nowMs: number;
}

const HOUR_SECONDS = 3_600;
const DAY_SECONDS = 86_400;

function fraction(value: number): number {
  return Math.min(1, Math.max(0, value));
}

/** The five parts of the display score, rounded to two decimals each for the job's result. */
export function displayScoreParts(inputs: ScoreInputs): Record<string, number> {
  const { ratingSum, reviewCount, meanResponseSeconds: response, lastSeenMs } = inputs;
  const mean = reviewCount > 0 ? ratingSum / reviewCount : 1;
  const responseShare = response === null ? 0
    : 1 - (response - HOUR_SECONDS) / (DAY_SECONDS - HOUR_SECONDS);
  const daysAway = lastSeenMs === null ? Infinity : (inputs.nowMs - lastSeenMs) / 86_400_000;
  const parts: Record<string, number> = {
    rating: 35 * fraction((mean - 1) / 4),
    reviews: 15 * fraction(reviewCount / 20),
    response: 20 * fraction(responseShare),
    strength: 15 * fraction(inputs.strength / 700),
    recency: 15 * fraction(1 - daysAway / 30),
  };
  return parts;
}

export function displayScore(parts: Record<string, number>): number {
  const sum = Object.values(parts).reduce((a, b) => a + b, 0);
  return Math.min(100, Math.max(0, Math.round(sum)));
}

async function meanResponse(ctx: JobContext, userId: number): Promise<number | null> {
  const totals = await ctx.host.call("redis", "call", { command: "HMGET",
    keys: [`response_time:${userId}`], args: ["sum_seconds", "count"] }) as unknown[];
  return meanOf(totals[0], totals[1]).mean_seconds;
}

export async function updateDisplayScore(ctx: JobContext, userId: unknown): Promise<JsonObject> {
  const id = positiveId("user_id", userId);
  const user = await liveUser(ctx, id, SCORE_SQL);
  const inputs = {
    ratingSum: numberIn(user, "rating_sum"),
    reviewCount: numberIn(user, "review_count"),
    meanResponseSeconds: await meanResponse(ctx, id),
    strength: numberIn(user, "strength"),
    lastSeenMs: dbTimeMs(user.last_seen_at, "users.last_seen_at"),
    nowMs: Date.now(),
  };

  const parts = displayScoreParts(inputs);
  const score = displayScore(parts);

  const sql = "UPDATE users SET display_score = :score WHERE id = :user_id "
    + "AND deleted_at IS NULL";
  await execute(ctx, sql, { score, user_id: id });
  await ctx.host.call("redis", "call", { command: "SET", keys: [`display_score:${id}`],
    args: [score, "EX", DISPLAY_SCORE_TTL_SECONDS] });
  const shown = Object.fromEntries(
    Object.entries(parts).map(([name, value]) => [name, Math.round(value * 100) / 100]));
  return { user_id: id, display_score: score, parts: shown };
}

// RemoveUserEventsWorker. Redis deletes a sorted set when its last member goes, so a
// stream emptied here is dropped by the same ZREMRANGEBYSCORE, with no window in which a
// DEL could throw away an event UserEventTrackerWorker has just added.

const EVENT_RETENTION_MS = 90 * 86_400_000;
// Keys per SCAN (a hint to Redis) and so streams per MULTI: two commands for each.
const SCAN_BATCH = 500;

function pruneCommands(streams: string[], cutoffMs: number): RedisCommand[] {
  return streams.flatMap((stream) => [
    // "(" makes the bound exclusive: an event exactly 90 days old stays.
    { command: "ZREMRANGEBYSCORE", keys: [stream], args: ["-inf", `(${cutoffMs}`] },
    { command: "ZCARD", keys: [stream], args: [] },
  ]);
}

export async function removeOldUserEvents(ctx: JobContext): Promise<JsonObject> {
  const cutoffMs = Date.now() - EVENT_RETENTION_MS;
  const totals = { removed: 0, streams_seen: 0, streams_dropped: 0 };
  let cursor: unknown = 0;
  do {
    const args = [String(cursor), "MATCH", "events:user:*", "COUNT", SCAN_BATCH, "TYPE", "zset"];
    const reply = await ctx.host.call("redis", "call", { command: "SCAN", keys: [], args });
    const [next, streams] = reply as [unknown, string[]];
    cursor = next;
    if (streams.length === 0) continue;

    const commands = pruneCommands(streams, cutoffMs);
    const replies = await ctx.host.call("redis", "multi", { commands }) as number[];
    for (let i = 0; i < streams.length; i += 1) {
      const [removed, left] = [replies[2 * i], replies[2 * i + 1]];
      totals.removed += removed;
      // SCAN may return a key twice; only the visit that emptied it counts it as dropped.
      if (removed > 0 && left === 0) totals.streams_dropped += 1;
    }
    totals.streams_seen += streams.length;
  } while (String(cursor) !== "0");
  return { ...totals, cutoff: new Date(cutoffMs).toISOString() };
}

defineWorker("MixpanelTrackWorker", 3, trackMixpanel);
defineWorker("UserEventTrackerWorker", 4, trackUserEvent);
defineWorker("MixpanelUpdateUserWorker", 1, updateMixpanelUser);
defineWorker("RecordServiceStatsWorker", 3, recordServiceStats);
defineWorker("ResponseTimeWorker", 2, recordResponseTime);
defineWorker("DisplayScoreWorker", 1, updateDisplayScore);
defineWorker("RemoveUserEventsWorker", 0, removeOldUserEvents);
