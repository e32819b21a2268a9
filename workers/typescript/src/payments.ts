// PayingSimbiWorker (shared/WORKERS.md, "TypeScript: users"): Simbi moves between users in
// one db.transaction, the critical path of issue 4.
//
// The transaction writes the ledger row first, then the debit and the credit:
// - The ledger's unique idempotency_key makes a second run of the same transfer fail at its
//   first statement. On PostgreSQL a second run at the same moment waits on the unique
//   index until the first commits, then fails with ConstraintViolation; on SQLite the
//   write lock (BEGIN IMMEDIATE) orders them, and the second finds the row. Either way the
//   money moves once, and the second run answers "already applied".
// - The debit only touches a row whose balance covers the amount (expect_rows 1), so no
//   balance goes below zero, however many transfers leave one account at once.
// - The two balance updates run in user-id order, so two opposite transfers (A to B, B to
//   A) lock the rows in the same order and cannot deadlock on PostgreSQL.

import type { JsonObject } from "./runtime/args";
import { invalid, shown } from "./runtime/args";
import type { Row, Statement } from "./runtime/db";
import { constraintViolation, numberOf, query, rowCountMismatch, transaction }
  from "./runtime/db";
import type { JobContext } from "./runtime/worker";
import { PermanentError } from "./runtime/worker";

// One transfer moves at most this much: far above any service's price, and far below
// where BIGINT or a JSON number loses precision, so a typo of a few zeros is refused.
export const MAX_TRANSFER_SIMBI = 1_000_000;
// The ledger's columns are String(200).
export const MAX_KEY_CHARS = 200;
export const MAX_REASON_CHARS = 200;

export interface Transfer {
  from: number;
  to: number;
  amount: number;
  reason: string;
  key: string;
}

const LEDGER_ROW_SQL = "SELECT id, kind, from_user_id, to_user_id, amount "
  + "FROM simbi_transactions WHERE idempotency_key = :key";
const USERS_SQL = "SELECT id, simbi_balance, deleted_at FROM users WHERE id IN (:from, :to)";
const INSERT_LEDGER_SQL = "INSERT INTO simbi_transactions "
  + "(kind, from_user_id, to_user_id, amount, reason, idempotency_key) "
  + "VALUES ('transfer', :from, :to, :amount, :reason, :key) RETURNING id";
const DEBIT_SQL = "UPDATE users SET simbi_balance = simbi_balance - :amount "
  + "WHERE id = :from AND simbi_balance >= :amount AND deleted_at IS NULL "
  + "RETURNING simbi_balance";
const CREDIT_SQL = "UPDATE users SET simbi_balance = simbi_balance + :amount "
  + "WHERE id = :to AND deleted_at IS NULL RETURNING simbi_balance";

/** A positive whole id that survives the trip through JSON exactly. */
export function positiveId(name: string, value: unknown): number {
  if (Number.isSafeInteger(value) && (value as number) > 0) return value as number;
  throw invalid(name, "a positive whole number id", value);
}

/** Counts characters as the database does (code points), not UTF-16 units. */
function charCount(text: string): number {
  return [...text].length;
}

function cappedString(name: string, value: unknown, cap: number, nonEmpty: boolean): string {
  if (typeof value !== "string" || (nonEmpty && value === "")) {
    throw invalid(name, nonEmpty ? "a non-empty string" : "a string", value);
  }
  if (charCount(value) > cap) {
    throw invalid(name, `at most ${cap} characters`, `${charCount(value)} characters`);
  }
  return value;
}

export function transferOf(
  fromUserId: unknown, toUserId: unknown, amount: unknown, reason: unknown, key: unknown,
): Transfer {
  const from = positiveId("from_user_id", fromUserId);
  const to = positiveId("to_user_id", toUserId);
  if (from === to) throw invalid("to_user_id", `another user than from_user_id ${from}`, to);
  if (!Number.isSafeInteger(amount) || (amount as number) < 1
    || (amount as number) > MAX_TRANSFER_SIMBI) {
    throw invalid("amount", `a whole number of Simbi from 1 to ${MAX_TRANSFER_SIMBI}`, amount);
  }
  return {
    from, to, amount: amount as number,
    reason: cappedString("reason", reason, MAX_REASON_CHARS, false),
    key: cappedString("idempotency_key", key, MAX_KEY_CHARS, true),
  };
}

/** The ledger row, then the debit and the credit in user-id order (see the header). */
export function transferStatements(t: Transfer): Statement[] {
  const params = { from: t.from, to: t.to, amount: t.amount };
  const ledger = { sql: INSERT_LEDGER_SQL, params: { ...params, reason: t.reason, key: t.key },
    expect_rows: 1, label: "ledger" };
  const debit = { sql: DEBIT_SQL, params, expect_rows: 1, label: "debit" };
  const credit = { sql: CREDIT_SQL, params, expect_rows: 1, label: "credit" };
  return t.from < t.to ? [ledger, debit, credit] : [ledger, credit, debit];
}

async function ledgerRow(ctx: JobContext, key: string): Promise<Row | undefined> {
  return (await query(ctx, LEDGER_ROW_SQL, { key }))[0];
}

async function usersOf(ctx: JobContext, t: Transfer): Promise<Map<number, Row>> {
  const rows = await query(ctx, USERS_SQL, { from: t.from, to: t.to });
  return new Map(rows.map((row) => [Number(row.id), row]));
}

/** Why `id` cannot take part in a transfer, or null when it can. */
function goneReason(users: Map<number, Row>, id: number): string | null {
  const user = users.get(id);
  if (user === undefined) return `user ${id} does not exist`;
  return user.deleted_at === null || user.deleted_at === undefined
    ? null : `user ${id} is deleted`;
}

function requireParties(users: Map<number, Row>, t: Transfer): void {
  const from = goneReason(users, t.from);
  if (from !== null) throw new PermanentError(`from_user_id: ${from}`);
  const to = goneReason(users, t.to);
  if (to !== null) throw new PermanentError(`to_user_id: ${to}`);
}

// The key was used before (or by a run at the same moment). Retrying the same transfer is
// the point of the key; another transfer under it is a bug in the caller, and no retry
// fixes it.
async function alreadyApplied(ctx: JobContext, t: Transfer, row: Row): Promise<JsonObject> {
  const same = row.kind === "transfer" && row.from_user_id === t.from
    && row.to_user_id === t.to && row.amount === t.amount;
  if (!same) {
    const was = { kind: row.kind, from_user_id: row.from_user_id, to_user_id: row.to_user_id,
      amount: row.amount };
    throw new PermanentError(`idempotency_key ${shown(t.key)} was used by another transfer `
      + `(${shown(was)}), not from ${t.from} to ${t.to} of ${t.amount}`);
  }
  ctx.log(`transfer ${row.id} already applied under this idempotency_key`);
  const users = await usersOf(ctx, t);
  return { applied: false, transaction_id: row.id, ...balances(users, t) };
}

function balances(users: Map<number, Row>, t: Transfer): JsonObject {
  return { from_balance: numberOf(users.get(t.from), "simbi_balance"),
    to_balance: numberOf(users.get(t.to), "simbi_balance") };
}

/** Slack's text rules: &, < and > escaped, on one line, so a reason cannot @-mention. */
function slackText(text: string): string {
  return text.replace(/\s+/g, " ").replace(/&/g, "&amp;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}

// Posted through SlackNotifierWorker rather than slack.post from here: the payment then
// dies at once with its own reason whether or not Slack answers (a webhook outage would
// otherwise make this job retry a debit that cannot succeed), Slack's rate limits and
// outages are retried on the slack queue without holding the critical one, and that
// worker already names the user with Slack-escaped details.
async function refuseInsufficient(ctx: JobContext, t: Transfer): Promise<never> {
  const users = await usersOf(ctx, t);
  const gone = goneReason(users, t.from);
  if (gone !== null) throw new PermanentError(`from_user_id: ${gone}`);

  const balance = numberOf(users.get(t.from), "simbi_balance");
  const reason = t.reason === "" ? "" : ` for "${slackText(t.reason)}"`;
  const text = `Payment refused, insufficient Simbi: user ${t.from} has ${balance} and tried `
    + `to pay ${t.amount} to user ${t.to}${reason}`;
  await ctx.host.call("jobs", "enqueue",
    { worker: "SlackNotifierWorker", args: ["payments", t.from, text] });
  throw new PermanentError(`insufficient funds: user ${t.from} has ${balance} Simbi, `
    + `the transfer of ${t.amount} needs more; posted to Slack #payments`);
}

async function explainFailure(ctx: JobContext, t: Transfer, err: unknown): Promise<JsonObject> {
  if (rowCountMismatch(err, "debit")) return refuseInsufficient(ctx, t);
  if (rowCountMismatch(err, "credit")) {
    throw new PermanentError(`to_user_id: user ${t.to} was deleted; nothing moved`);
  }
  if (constraintViolation(err)) {
    // A run of the same key committed first, or a user row vanished (a foreign key).
    const row = await ledgerRow(ctx, t.key);
    if (row !== undefined) ctx.log("another run of this idempotency_key committed first");
    if (row !== undefined) return alreadyApplied(ctx, t, row);
    requireParties(await usersOf(ctx, t), t);
  }
  throw err;
}

export async function payingSimbi(
  ctx: JobContext, fromUserId: unknown, toUserId: unknown, amount: unknown, reason: unknown,
  idempotencyKey: unknown,
): Promise<JsonObject> {
  const t = transferOf(fromUserId, toUserId, amount, reason, idempotencyKey);

  // The ledger first: a retry of an applied transfer succeeds even if a user is gone since.
  const existing = await ledgerRow(ctx, t.key);
  if (existing !== undefined) return alreadyApplied(ctx, t, existing);
  requireParties(await usersOf(ctx, t), t);

  let results;
  try {
    results = await transaction(ctx, transferStatements(t));
  } catch (err) {
    return explainFailure(ctx, t, err);
  }

  const [ledger, first, second] = results;
  const [debit, credit] = t.from < t.to ? [first, second] : [second, first];
  return { applied: true, transaction_id: ledger?.rows?.[0]?.id ?? null,
    from_balance: numberOf(debit?.rows?.[0], "simbi_balance"),
    to_balance: numberOf(credit?.rows?.[0], "simbi_balance") };
}
