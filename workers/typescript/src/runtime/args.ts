// Checks for job arguments. A bad argument is permanent: retrying the same JSON cannot help,
// so each message names the argument, the rule and the value received.

import { PermanentError } from "./worker";

export type JsonObject = Record<string, unknown>;

/** A short, printable rendering of a received value for error messages. */
export function shown(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function invalid(name: string, rule: string, value: unknown): PermanentError {
  return new PermanentError(`${name} must be ${rule}, received ${shown(value)}`);
}

export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value === "string" && value !== "") return value;
  throw invalid(name, "a non-empty string", value);
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function objectOrNull(name: string, value: unknown): JsonObject | null {
  if (value === null || isJsonObject(value)) return value;
  throw invalid(name, "an object or null", value);
}
