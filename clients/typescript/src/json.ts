/**
 * JSON as the Python client writes it (json.dumps with ensure_ascii=False), so that a
 * job's payload, description, size and unique digest are the same bytes from every
 * client; and the check that refuses what JSON cannot carry, naming the offending path.
 *
 * NOTE: JavaScript has one number type. A safe integer is written as an integer (`1`,
 * never `1.0`), so a Python worker receives an int; every other number is written as
 * Python's repr writes floats (`1e-05`, `1e+16`, `1.5e+300`), so it arrives as a float.
 */
import { JobInputError } from './errors.js';

export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const DESCRIPTION_ARG_CHARS = 60;

export interface DumpOptions {
  sortKeys?: boolean;
  compact?: boolean;
}

export function pyDumps(value: JsonValue, options: DumpOptions = {}): string {
  const [item, key] = options.compact ? [',', ':'] : [', ', ': '];
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => pyDumps(v, options)).join(item)}]`;

  const names = Object.keys(value);
  if (options.sortKeys) names.sort(compareCodePoints);
  const entries = names.map(
    (name) => `${JSON.stringify(name)}${key}${pyDumps(value[name]!, options)}`,
  );
  return `{${entries.join(item)}}`;
}

/** Python sorts keys by code point; JavaScript's default sort compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  const left = Array.from(a, (c) => c.codePointAt(0)!);
  const right = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] !== right[i]) return left[i]! - right[i]!;
  }
  return left.length - right.length;
}

export function pyNumber(value: number): string {
  return Number.isSafeInteger(value) ? String(value) : pyFloat(value);
}

/** Python's repr of a float: shortest digits, exponent form below 1e-4 or from 1e16. */
export function pyFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  const [mantissa, exponentText] = value.toExponential().split('e') as [string, string];
  const sign = value < 0 ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  const exponent = Number(exponentText);
  const point = exponent + 1; // digits before the decimal point
  if (point > -4 && point <= 16) return sign + fixed(digits, point);

  const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const magnitude = String(Math.abs(exponent)).padStart(2, '0');
  return `${sign}${head}e${exponent < 0 ? '-' : '+'}${magnitude}`;
}

function fixed(digits: string, point: number): string {
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Python's repr of a str, as the Python client's messages show keys and names. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const char of text) out += reprChar(char, quote);
  return quote + out + quote;
}

const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;
const SHORT_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function reprChar(char: string, quote: string): string {
  if (char === quote) return `\\${char}`;
  if (SHORT_ESCAPES[char]) return SHORT_ESCAPES[char]!;
  if (char === ' ' || !NOT_PRINTABLE.test(char)) return char;
  const code = char.codePointAt(0)!;
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, '0')}`;
  return `\\U${code.toString(16).padStart(8, '0')}`;
}

/** Cut to 60 characters (code points, as Python counts them) with an ellipsis. */
export function short(text: string): string {
  const chars = Array.from(text);
  if (chars.length <= DESCRIPTION_ARG_CHARS) return text;
  return `${chars.slice(0, DESCRIPTION_ARG_CHARS - 1).join('')}…`;
}

/**
 * Lists/objects inside one argument. Ruby's JSON parser stops at 100 levels and Python's
 * recursion near 1,000; the Ruby child's line wraps an argument in two more
 * ({"type": "job", ..., "args": [ARG]}), so 32 leaves room and is the same for every client.
 */
export const MAX_DEPTH = 32;

/**
 * Refuse anything JSON would change or reject, naming the path of the offending value;
 * `path` names one argument, and arrays/objects nested in it past MAX_DEPTH are refused.
 */
export function checkJsonNative(value: unknown, path: string): void {
  checkNative(value, path, path, MAX_DEPTH);
}

function checkNative(value: unknown, path: string, argument: string, levels: number): void {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    if (typeof value === 'string') checkUnicode(value, path);
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw new JobInputError(`${path} is ${pyFloat(value)}: JSON has no NaN or infinity`);
    return;
  }
  const container = Array.isArray(value) || isPlainObject(value);
  if (container && levels === 0)
    throw new JobInputError(`${argument} is nested more than ${MAX_DEPTH} levels deep`);
  if (Array.isArray(value)) {
    // By index, not forEach: forEach skips a hole (['a', , 'b']) that pyDumps's map would
    // write as nothing, invalid JSON; read by index a hole is undefined, refused below.
    for (let index = 0; index < value.length; index++)
      checkNative(value[index], `${path}[${index}]`, argument, levels - 1);
    return;
  }
  if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      checkUnicode(key, `the key ${pyRepr(key)} of ${path}`);
      checkNative(item, `${path}[${pyRepr(key)}]`, argument, levels - 1);
    }
    return;
  }
  throw new JobInputError(
    `${path} is a ${typeName(value)} (${short(describeValue(value))}): arguments must be ` +
      'JSON-native (str, int, float, bool, None, list, dict with str keys)',
  );
}

function checkUnicode(text: string, path: string): void {
  let index = 0; // in code points, as Python counts characters
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code >= 0xd800 && code <= 0xdfff) {
      const hex = code.toString(16).toUpperCase().padStart(4, '0');
      throw new JobInputError(
        `${path} contains a lone surrogate (U+${hex}) at character ${index}: ` +
          'not valid Unicode text',
      );
    }
    index++;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function typeName(value: unknown): string {
  if (typeof value === 'object' && value !== null) return value.constructor?.name ?? 'object';
  return typeof value;
}

export function describeValue(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  try {
    return String(value);
  } catch {
    return typeName(value); // a Symbol.toPrimitive that throws, an object without toString
  }
}
