// Search indexing workers (shared/WORKERS.md, "TypeScript: search indexing").
//
// The index is the search host service (simbi_workers/services/search.py): these workers
// turn services and users into its documents. A record that must not be found (missing,
// an inactive service, a deleted user) is removed, so every run leaves the index in step
// with the record as it is now, whatever happened before.

import type { JsonObject } from "./runtime/args";
import { invalid } from "./runtime/args";
import type { Row } from "./runtime/db";
import { execute, query } from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { defineWorker } from "./runtime/worker";

export const RECORD_TYPES = ["service", "user"] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export const MAX_BATCH_SIZE = 1000;
// The search service refuses a longer body (services/search.py, MAX_BODY_CHARS).
export const MAX_BODY_CHARS = 50_000;
// How long a bulk job remembers that it enqueued its follow-up: longer than its retries.
const FOLLOW_UP_MARKER_TTL_SECONDS = 86_400;

export interface SearchDocument {
  recordId: number;
  ownerId: number;
  title: string;
  body: string;
}

/** A record as the index should hold it, or why it must not be in the index. */
type Indexable = { document: SearchDocument } | { gone: string };

interface Source {
  table: string;
  /** The columns and joins; WHERE clauses on `r.id` are added per use. */
  select: string;
  indexable(row: Row): Indexable;
}

const SOURCES: Record<RecordType, Source> = {
  service: {
    table: "services",
    select: "SELECT r.id, r.user_id, r.title, r.description, r.category, r.status, "
      + "u.first_name, u.last_name, u.deleted_at FROM services r JOIN users u ON u.id = r.user_id",
    indexable: serviceIndexable,
  },
  user: {
    table: "users",
    select: "SELECT r.id, r.first_name, r.last_name, r.bio, r.deleted_at FROM users r",
    indexable: userIndexable,
  },
};

function textOf(value: unknown): string {
  return typeof value === "string" ? value.trim() : "";
}

function fullName(first: unknown, last: unknown): string {
  return [textOf(first), textOf(last)].filter((part) => part !== "").join(" ");
}

function isSet(value: unknown): boolean {
  return value !== null && value !== undefined;
}

function documentOf(row: Row, ownerId: unknown, title: string, parts: unknown[]): Indexable {
  if (title === "") return { gone: "has no title or name" };
  const body = parts.map(textOf).filter((part) => part !== "").join("\n");
  return { document: { recordId: Number(row.id), ownerId: Number(ownerId), title,
    body: body.slice(0, MAX_BODY_CHARS) } };
}

/** Title, description, category and owner name; only active services of live owners. */
export function serviceIndexable(row: Row): Indexable {
  if (row.status !== "active") return { gone: `is ${String(row.status)}, not active` };
  if (isSet(row.deleted_at)) return { gone: "belongs to a deleted user" };
  const owner = fullName(row.first_name, row.last_name);
  return documentOf(row, row.user_id, textOf(row.title),
    [row.description, row.category, owner]);
}

/** First and last name, and bio; a deleted user is not found. */
export function userIndexable(row: Row): Indexable {
  if (isSet(row.deleted_at)) return { gone: "is deleted" };
  return documentOf(row, row.id, fullName(row.first_name, row.last_name), [row.bio]);
}

function recordTypeOf(value: unknown): RecordType {
  if (RECORD_TYPES.includes(value as RecordType)) return value as RecordType;
  throw invalid("record_type", `one of ${RECORD_TYPES.join(", ")}`, value);
}

function wholeNumber(name: string, value: unknown, least: number, most: number): number {
  const n = value as number;
  if (Number.isSafeInteger(n) && n >= least && n <= most) return n;
  const rule = most === Number.MAX_SAFE_INTEGER ? `a whole number >= ${least}`
    : `a whole number from ${least} to ${most}`;
  throw invalid(name, rule, value);
}

async function upsert(ctx: JobContext, type: RecordType, doc: SearchDocument): Promise<void> {
  await ctx.host.call("search", "upsert", { record_type: type, record_id: doc.recordId,
    owner_id: doc.ownerId, title: doc.title, body: doc.body });
}

async function remove(ctx: JobContext, type: RecordType, recordId: number): Promise<boolean> {
  const reply = await ctx.host.call("search", "remove",
    { record_type: type, record_id: recordId }) as { removed?: boolean } | null;
  return reply?.removed === true;
}

/** Upserts or removes one record's document; says which, and why when removed. */
async function apply(ctx: JobContext, type: RecordType, row: Row): Promise<JsonObject> {
  const outcome = SOURCES[type].indexable(row);
  const recordId = Number(row.id);
  if ("document" in outcome) {
    await upsert(ctx, type, outcome.document);
    return { action: "indexed" };
  }
  const removed = await remove(ctx, type, recordId);
  ctx.log(`${type} ${recordId} ${outcome.gone}: removed from the index`);
  return { action: "removed", reason: outcome.gone, was_indexed: removed };
}

// SearchIndexWorker(record_type, record_id)

export async function indexRecord(
  ctx: JobContext, recordType: unknown, recordId: unknown,
): Promise<JsonObject> {
  const type = recordTypeOf(recordType);
  const id = wholeNumber("record_id", recordId, 1, Number.MAX_SAFE_INTEGER);

  const source = SOURCES[type];
  const [row] = await query(ctx, `${source.select} WHERE r.id = :id`, { id });
  if (row === undefined) {
    const removed = await remove(ctx, type, id);
    return { record_type: type, record_id: id, action: "removed", reason: "does not exist",
      was_indexed: removed };
  }

  return { record_type: type, record_id: id, ...await apply(ctx, type, row) };
}

// SearchBulkIndexWorker(record_type, after_id, batch_size). The arguments are the position:
// each job does the records with ids after after_id, then enqueues the job for the rest,
// so a crash loses nothing and a retry redoes one batch (upserts are idempotent).

/** Documents whose record is gone, with ids in (afterId, lastId] (no upper bound: null). */
async function pruneOrphans(
  ctx: JobContext, type: RecordType, afterId: number, lastId: number | null,
): Promise<number> {
  // search_documents is the table the index follows (store/schema.py), so deleting its rows
  // removes the documents; one statement instead of a remove per id.
  const upTo = lastId === null ? "" : " AND record_id <= :last_id";
  const sql = "DELETE FROM search_documents WHERE record_type = :record_type "
    + `AND record_id > :after_id${upTo} AND NOT EXISTS `
    + `(SELECT 1 FROM ${SOURCES[type].table} r WHERE r.id = search_documents.record_id)`;
  const params = { record_type: type, after_id: afterId, ...(lastId === null ? {} : {
    last_id: lastId }) };
  return execute(ctx, sql, params);
}

// A retry of a job that already enqueued its follow-up must not start a second chain: the
// job remembers it did, under its own id. NOTE: a crash between the enqueue and the marker
// still doubles the chain from there; that costs work, not correctness.
async function enqueueNext(ctx: JobContext, args: unknown[]): Promise<string> {
  const marker = `search:bulk:next:${ctx.jobId}`;
  const seen = await ctx.host.call("redis", "call", { command: "GET", keys: [marker], args: [] });
  if (seen !== null) return String(seen);
  const reply = await ctx.host.call("jobs", "enqueue",
    { worker: "SearchBulkIndexWorker", args }) as { job_id?: string } | null;
  const jobId = reply?.job_id ?? "";
  await ctx.host.call("redis", "call", { command: "SET", keys: [marker],
    args: [jobId, "EX", FOLLOW_UP_MARKER_TTL_SECONDS] });
  return jobId;
}

export async function bulkIndex(
  ctx: JobContext, recordType: unknown, afterId: unknown, batchSize: unknown,
): Promise<JsonObject> {
  const type = recordTypeOf(recordType);
  const after = wholeNumber("after_id", afterId, 0, Number.MAX_SAFE_INTEGER);
  const size = wholeNumber("batch_size", batchSize, 1, MAX_BATCH_SIZE);

  const sql = `${SOURCES[type].select} WHERE r.id > :after_id ORDER BY r.id LIMIT :limit`;
  const rows = await query(ctx, sql, { after_id: after, limit: size });
  let [indexed, removed] = [0, 0];
  for (const row of rows) {
    const outcome = await apply(ctx, type, row);
    if (outcome.action === "indexed") indexed += 1;
    else removed += 1;
  }

  // A short batch is the last one.
  const done = rows.length < size;
  const lastId = done ? null : Number(rows[rows.length - 1].id);
  const orphans = await pruneOrphans(ctx, type, after, lastId);
  const next = lastId === null ? null : await enqueueNext(ctx, [type, lastId, size]);
  return { record_type: type, after_id: after, indexed, removed, orphans_removed: orphans,
    done, next_after_id: lastId, next_job_id: next };
}

// SearchRemoveWorker(record_type, record_id)

export async function removeRecord(
  ctx: JobContext, recordType: unknown, recordId: unknown,
): Promise<JsonObject> {
  const type = recordTypeOf(recordType);
  const id = wholeNumber("record_id", recordId, 1, Number.MAX_SAFE_INTEGER);

  const removed = await remove(ctx, type, id);
  return { record_type: type, record_id: id, removed };
}

defineWorker("SearchIndexWorker", 2, indexRecord);
defineWorker("SearchBulkIndexWorker", 3, bulkIndex);
defineWorker("SearchRemoveWorker", 2, removeRecord);
