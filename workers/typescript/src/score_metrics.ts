// The metrics a score formula may weigh (shared/WORKERS.md, ScoreWorker), and the database
// steps the score workers share. A formula's weights name metrics of one subject type:
//
// user metrics (a deleted user has none: it is not scored)
//   strength         users.strength (RecalculateStrengthWorker)
//   display_score    users.display_score, 0 before DisplayScoreWorker ran
//   simbi_balance    users.simbi_balance, in Simbi
//   services_count   the user's services with status active
//   review_count     reviews of any of the user's services
//   rating_average   the mean rating of those reviews, two decimals; 0 without reviews
//   followers_count  follows whose followed_id is the user
//
// service metrics
//   rating_average   services.rating_average (UpdateRatingWorker), 0 when not rated
//   rating_count     services.rating_count
//   favorites_count  favorites of the service
//   comments_count   comments on the service
//   price            services.price, in Simbi

import type { JsonObject } from "./runtime/args";
import { invalid, isJsonObject, shown } from "./runtime/args";
import type { Row } from "./runtime/db";
import { execute, query } from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { PermanentError } from "./runtime/worker";

export type SubjectType = "user" | "service";

export const SUBJECT_TYPES: readonly SubjectType[] = ["user", "service"];

export const METRICS: Record<SubjectType, readonly string[]> = {
  user: ["strength", "display_score", "simbi_balance", "services_count", "review_count",
    "rating_average", "followers_count"],
  service: ["rating_average", "rating_count", "favorites_count", "comments_count", "price"],
};

// The subject table is aliased `subject`, so that one WHERE clause serves both types.
// Counts are subqueries rather than joins: a join of reviews and follows would multiply.
const OWN_REVIEWS = "FROM reviews r JOIN services s ON s.id = r.service_id "
  + "WHERE s.user_id = subject.id";
const METRICS_SQL: Record<SubjectType, string> = {
  user: "SELECT subject.id, subject.strength, subject.simbi_balance, "
    + "COALESCE(subject.display_score, 0) AS display_score, "
    + "(SELECT COUNT(*) FROM services s WHERE s.user_id = subject.id "
    + "AND s.status = 'active') AS services_count, "
    + `(SELECT COUNT(*) ${OWN_REVIEWS}) AS review_count, `
    // CAST: PostgreSQL sums a bigint into a numeric, which does not travel as JSON.
    + `(SELECT CAST(COALESCE(SUM(r.rating), 0) AS BIGINT) ${OWN_REVIEWS}) AS rating_total, `
    + "(SELECT COUNT(*) FROM follows f WHERE f.followed_id = subject.id) AS followers_count "
    + "FROM users subject WHERE subject.deleted_at IS NULL",
  service: "SELECT subject.id, subject.rating_count, subject.price, "
    + "COALESCE(subject.rating_average, 0) AS rating_average, "
    + "(SELECT COUNT(*) FROM favorites f WHERE f.service_id = subject.id) AS favorites_count, "
    + "(SELECT COUNT(*) FROM comments c WHERE c.service_id = subject.id) AS comments_count "
    // 1 = 1: every caller appends "AND ...", as after the users' deleted_at test.
    + "FROM services subject WHERE 1 = 1",
};

const CHANGED_SINCE = "(subject.updated_at > :since OR subject.created_at > :since)";

export interface Formula {
  id: number;
  name: string;
  subjectType: SubjectType;
  weights: Map<string, number>;
  lastRunAt: string | null;
}

// Host calls

export async function enqueue(ctx: JobContext, worker: string, args: unknown[]) {
  return ctx.host.call("jobs", "enqueue", { worker, args });
}

// Arguments and values

export function positiveId(name: string, value: unknown): number {
  if (Number.isSafeInteger(value) && (value as number) > 0) return value as number;
  throw invalid(name, "a positive whole number", value);
}

export function subjectTypeOf(value: unknown): SubjectType {
  if (SUBJECT_TYPES.includes(value as SubjectType)) return value as SubjectType;
  throw invalid("subject_type", `one of ${SUBJECT_TYPES.join(", ")}`, value);
}

/** A mean to two decimals, from a sum and a count of whole ratings; null for no ratings. */
export function mean2(total: number, count: number): number | null {
  return count > 0 ? Math.round((total * 100) / count) / 100 : null;
}

// UTC "YYYY-MM-DD HH:MM:SS.mmm+00:00". SQLite keeps timestamps as text in that shape
// (CURRENT_TIMESTAMP, SQLAlchemy), so comparisons there are between strings, and an ISO
// "T" would sort after every time of the same day. PostgreSQL parses it as a timestamptz;
// the explicit offset keeps the session time zone out of it.
export function sqlTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "+00:00");
}

/** A timestamp as the database returned it, in the form sqlTime writes. */
export function normalTime(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const text = String(value).replace(" ", "T");
  // A time without a zone is UTC, as SQLite's CURRENT_TIMESTAMP writes it.
  const zoned = /(Z|[+-]\d{2}:?\d{2})$/.test(text) ? text : `${text}Z`;
  const ms = Date.parse(zoned);
  if (Number.isNaN(ms)) throw new Error(`unreadable timestamp from the database: ${shown(value)}`);
  return sqlTime(ms);
}

// Formulas

const FORMULA_SQL = "SELECT id, name, subject_type, weights, last_run_at "
  + "FROM score_formulas WHERE id = :id";

/** The formula, checked against the subject type the job names; null when there is none. */
export async function loadFormula(
  ctx: JobContext, formulaId: number, subjectType: SubjectType,
): Promise<Formula | null> {
  const [row] = await query(ctx, FORMULA_SQL, { id: formulaId });
  if (row === undefined) return null;

  const name = String(row.name);
  const where = `score formula ${formulaId} (${name})`;
  if (row.subject_type !== subjectType) {
    throw new PermanentError(`${where} scores ${row.subject_type}s, not ${subjectType}s`);
  }
  const weights = checkedWeights(where, subjectType, row.weights);
  return { id: formulaId, name, subjectType, weights, lastRunAt: normalTime(row.last_run_at) };
}

function checkedWeights(where: string, subjectType: SubjectType, stored: unknown) {
  // PostgreSQL's driver parses a JSON column; SQLite hands back its text.
  const weights = typeof stored === "string" ? parsedOrText(stored) : stored;
  if (!isJsonObject(weights) || Object.keys(weights).length === 0) {
    throw new PermanentError(`${where}: weights must be a non-empty object of metric: weight, `
      + `received ${shown(weights)}`);
  }
  const known = METRICS[subjectType];
  const checked = new Map<string, number>();
  for (const [metric, weight] of Object.entries(weights)) {
    if (!known.includes(metric)) {
      throw new PermanentError(`${where}: unknown ${subjectType} metric ${shown(metric)} `
        + `(known: ${known.join(", ")})`);
    }
    if (typeof weight !== "number" || !Number.isFinite(weight)) {
      throw new PermanentError(`${where}: the weight of ${metric} must be a number, `
        + `received ${shown(weight)}`);
    }
    checked.set(metric, weight);
  }
  return checked;
}

function parsedOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

// Metrics and scores

export function metricsOf(subjectType: SubjectType, row: Row): Record<string, number> {
  const values: Record<string, number> = {};
  for (const metric of METRICS[subjectType]) values[metric] = Number(row[metric] ?? 0);
  if (subjectType === "user") {
    values.rating_average = mean2(Number(row.rating_total), values.review_count) ?? 0;
  }
  return values;
}

/** The weighted sum, to six decimals so that float noise does not show in stored values. */
export function scoreOf(formula: Formula, metrics: Record<string, number>): number {
  let sum = 0;
  for (const [metric, weight] of formula.weights) sum += weight * metrics[metric];
  return Math.round(sum * 1e6) / 1e6;
}

export async function subjectMetrics(ctx: JobContext, subjectType: SubjectType, id: number) {
  const rows = await query(ctx, `${METRICS_SQL[subjectType]} AND subject.id = :id`, { id });
  return rows.length === 0 ? null : metricsOf(subjectType, rows[0]);
}

/** One page of subjects changed since `since` (all of them when null), ids after `after`. */
export async function changedSubjects(
  ctx: JobContext, subjectType: SubjectType, since: string | null, after: number, limit: number,
): Promise<Row[]> {
  const changed = since === null ? "" : ` AND ${CHANGED_SINCE}`;
  const sql = `${METRICS_SQL[subjectType]}${changed} AND subject.id > :after `
    + "ORDER BY subject.id LIMIT :limit";
  return query(ctx, sql, since === null ? { after, limit } : { since, after, limit });
}

/** Stores the scores of one formula in one statement: a row per subject, replaced. */
export async function upsertScores(
  ctx: JobContext, formula: Formula, values: [number, number][], computedAt: string,
): Promise<void> {
  const params: JsonObject = { subject_type: formula.subjectType, formula_id: formula.id,
    computed_at: computedAt };
  const tuples = values.map(([subjectId, value], i) => {
    params[`id${i}`] = subjectId;
    params[`value${i}`] = value;
    return `(:subject_type, :id${i}, :formula_id, :value${i}, :computed_at)`;
  });
  const sql = "INSERT INTO scores (subject_type, subject_id, formula_id, value, computed_at) "
    + `VALUES ${tuples.join(", ")} ON CONFLICT (subject_type, subject_id, formula_id) `
    + "DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at";
  await execute(ctx, sql, params);
}
