// Analytics workers (shared/WORKERS.md, "TypeScript: analytics").

import { createHash } from "node:crypto";

import type { JsonObject } from "./runtime/args";
import { invalid, isJsonObject, nonEmptyString, objectOrNull } from "./runtime/args";
import type { JobContext } from "./runtime/worker";
import { PermanentError, defineWorker } from "./runtime/worker";

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

defineWorker("MixpanelTrackWorker", 3, trackMixpanel);
defineWorker("UserEventTrackerWorker", 4, trackUserEvent);
