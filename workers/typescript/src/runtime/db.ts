// The db host service as a worker uses it (docs/protocol.md, "Host services"): `:name`
// parameters are bound by the host's driver, never spliced into the SQL.

import type { JobContext } from "./worker";
import { HostError } from "./host";

export type Row = Record<string, unknown>;
export type Params = Record<string, unknown>;

/** One statement of db.transaction. `expect_rows` rolls everything back on another count. */
export interface Statement {
  sql: string;
  params: Params;
  expect_rows?: number;
  label?: string;
}

export interface StatementOutcome {
  rowcount: number;
  rows?: Row[];
}

export async function query(ctx: JobContext, sql: string, params: Params): Promise<Row[]> {
  const reply = await ctx.host.call("db", "query", { sql, params }) as { rows?: Row[] } | null;
  return reply?.rows ?? [];
}

export async function execute(ctx: JobContext, sql: string, params: Params): Promise<number> {
  const reply = await ctx.host.call("db", "execute", { sql, params }) as
    { rowcount?: number } | null;
  return reply?.rowcount ?? 0;
}

/** All statements commit together or none does; the outcome of each, in order. */
export async function transaction(
  ctx: JobContext, statements: Statement[],
): Promise<StatementOutcome[]> {
  const reply = await ctx.host.call("db", "transaction", { statements }) as
    { results?: StatementOutcome[] } | null;
  return reply?.results ?? [];
}

/**
 * True when `err` is the transaction's RowCountMismatch for the statement labelled `label`:
 * db.transaction names the label at the start of that error's message.
 */
export function rowCountMismatch(err: unknown, label: string): boolean {
  return err instanceof HostError && err.className === "RowCountMismatch"
    && err.message.startsWith(`${label}:`);
}

/** A unique, foreign-key or check constraint refused a statement. */
export function constraintViolation(err: unknown): boolean {
  return err instanceof HostError && err.className === "ConstraintViolation";
}

/** The first row's column as a number (BIGINT columns arrive as JSON numbers). */
export function numberOf(row: Row | undefined, column: string): number | null {
  const value = row?.[column];
  return typeof value === "number" ? value : null;
}
