// Test doubles: a fake host (with a small in-memory Redis) and a harness for a real child.

import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";

import type { CallParams, Host } from "../src/runtime/host";
import { LineReader } from "../src/runtime/protocol";

export interface RecordedCall {
  service: string;
  method: string;
  params: CallParams;
}

interface RedisCommand {
  command: string;
  keys: string[];
  args: (string | number)[];
}

/** Just enough Redis for the analytics workers: strings, sorted sets and hashes. */
export class FakeRedis {
  strings = new Map<string, string>();
  zsets = new Map<string, Map<string, number>>();
  hashes = new Map<string, Map<string, number>>();
  /** Seconds to live given by EXPIRE or SET ... EX, per key; nothing ever expires. */
  ttls = new Map<string, number>();
  private scanned: string[] = [];

  run({ command, keys, args }: RedisCommand): unknown {
    const key = keys[0];
    switch (command) {
      case "GET": return this.strings.get(key) ?? null;
      case "SET": return this.setWithTtl(key, args);
      case "ZADD": return this.zaddPairs(key, args);
      case "DEL": return keys.filter((name) => this.del(name)).length;
      case "ZREMRANGEBYRANK": return this.trim(key, Number(args[0]), Number(args[1]));
      case "HINCRBY": return this.hincrby(key, String(args[0]), Number(args[1]));
      case "HGET": return this.hget(key, String(args[0]));
      case "HMGET": return args.map((field) => this.hget(key, String(field)));
      case "HSET": return this.hset(key, args);
      case "EXPIRE": return this.expire(key, Number(args[0]));
      case "ZREMRANGEBYSCORE": return this.dropByScore(key, String(args[0]), String(args[1]));
      case "ZCARD": return this.zsets.get(key)?.size ?? 0;
      case "SCAN": return this.scan(args);
      default: throw new Error(`FakeRedis does not know ${command}`);
    }
  }

  sorted(key: string): string[] {
    const entries = [...(this.zsets.get(key) ?? new Map<string, number>()).entries()];
    return entries.sort((a, b) => a[1] - b[1]).map(([member]) => member);
  }

  private set(key: string, value: string, onlyIfNew: boolean): string | null {
    if (onlyIfNew && this.strings.has(key)) return null;
    this.strings.set(key, value);
    return "OK";
  }

  private zaddPairs(key: string, args: (string | number)[]): number {
    let added = 0;
    for (let i = 0; i < args.length; i += 2) {
      added += this.zadd(key, Number(args[i]), String(args[i + 1]));
    }
    return added;
  }

  private del(key: string): boolean {
    return [this.strings, this.zsets, this.hashes].filter((kind) => kind.delete(key)).length > 0;
  }

  private zadd(key: string, score: number, member: string): number {
    const zset = this.zsets.get(key) ?? new Map<string, number>();
    this.zsets.set(key, zset);
    const added = zset.has(member) ? 0 : 1;
    zset.set(member, score);
    return added;
  }

  private trim(key: string, start: number, stop: number): number {
    const members = this.sorted(key);
    const last = Math.min(stop < 0 ? members.length + stop : stop, members.length - 1);
    const doomed = last < start ? [] : members.slice(start, last + 1);
    for (const member of doomed) this.zsets.get(key)?.delete(member);
    return doomed.length;
  }

  private hincrby(key: string, field: string, by: number): number {
    const hash = this.hashes.get(key) ?? new Map<string, number>();
    this.hashes.set(key, hash);
    hash.set(field, (hash.get(field) ?? 0) + by);
    return hash.get(field) as number;
  }

  private setWithTtl(key: string, args: (string | number)[]): string | null {
    const reply = this.set(key, String(args[0]), args.includes("NX"));
    const ex = args.indexOf("EX");
    if (reply !== null && ex !== -1) this.ttls.set(key, Number(args[ex + 1]));
    return reply;
  }

  // Hash values are kept as numbers; Redis replies with strings, so these do too.
  private hget(key: string, field: string): string | null {
    const value = this.hashes.get(key)?.get(field);
    return value === undefined ? null : String(value);
  }

  private hset(key: string, args: (string | number)[]): number {
    const hash = this.hashes.get(key) ?? new Map<string, number>();
    this.hashes.set(key, hash);
    let added = 0;
    for (let i = 0; i < args.length; i += 2) {
      if (!hash.has(String(args[i]))) added += 1;
      hash.set(String(args[i]), Number(args[i + 1]));
    }
    return added;
  }

  private expire(key: string, seconds: number): number {
    const exists = [this.strings, this.zsets, this.hashes].some((kind) => kind.has(key));
    if (exists) this.ttls.set(key, seconds);
    return exists ? 1 : 0;
  }

  /** ZREMRANGEBYSCORE with "-inf", "+inf" and "(" bounds; an emptied set is deleted. */
  private dropByScore(key: string, min: string, max: string): number {
    const zset = this.zsets.get(key);
    if (zset === undefined) return 0;
    const above = (score: number) => min === "-inf" || (min.startsWith("(")
      ? score > Number(min.slice(1)) : score >= Number(min));
    const below = (score: number) => max === "+inf" || (max.startsWith("(")
      ? score < Number(max.slice(1)) : score <= Number(max));
    const doomed = [...zset].filter(([, score]) => above(score) && below(score));
    for (const [member] of doomed) zset.delete(member);
    if (zset.size === 0) this.zsets.delete(key);
    return doomed.length;
  }

  /** SCAN cursor MATCH pattern [COUNT n] [TYPE zset|hash|string]; "*" the only wildcard.
   * Cursor 0 takes a sorted snapshot of the keys, later cursors index into it, so keys
   * deleted meanwhile do not make the scan skip others (as Redis promises). */
  private scan(args: (string | number)[]): [number, string[]] {
    const option = (name: string) => {
      const at = args.indexOf(name);
      return at === -1 ? undefined : String(args[at + 1]);
    };
    const kinds = { string: this.strings, zset: this.zsets, hash: this.hashes };
    const type = option("TYPE") as keyof typeof kinds | undefined;
    const pools = type === undefined ? Object.values(kinds) : [kinds[type]];
    const start = Number(args[0]);
    if (start === 0) this.scanned = [...new Set(pools.flatMap((pool) => [...pool.keys()]))];
    const all = this.scanned.sort();
    const count = Number(option("COUNT") ?? 10);
    const pattern = new RegExp(`^${(option("MATCH") ?? "*").split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
    const live = (name: string) => pools.some((pool) => pool.has(name));
    const page = all.slice(start, start + count).filter((name) => pattern.test(name) && live(name));
    const next = start + count >= all.length ? 0 : start + count;
    return [next, page];
  }
}

/** Records every call; redis calls go to a FakeRedis, others get `answer`. */
export class FakeHost implements Host {
  calls: RecordedCall[] = [];
  redis = new FakeRedis();

  constructor(private answer: (call: RecordedCall) => unknown = () => null) {}

  async call(service: string, method: string, params: CallParams): Promise<unknown> {
    const call = { service, method, params: structuredClone(params) };
    this.calls.push(call);
    if (service === "redis" && method === "call") return this.redis.run(params as never);
    if (service === "redis" && method === "multi") {
      const commands = params.commands as RedisCommand[];
      return commands.map((command) => this.redis.run(command));
    }
    return this.answer(call);
  }
}

export const DIST = join(__dirname, "..");
export const CHILD_ENTRY = join(DIST, "src", "main.js");
export const TEST_WORKERS = join(DIST, "test", "fixtures", "test_workers.js");
export const FAILING_WORKERS = join(DIST, "test", "fixtures", "failing_workers.js");

// Messages read back in tests: any field may be asserted on.
export type Message = Record<string, any>;

/** A real child process speaking the protocol, driven line by line. */
export class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  private stdout: LineReader;
  private closed: Promise<number | null>;
  stderr = "";

  constructor(extraWorkers: string | null = TEST_WORKERS) {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    if (extraWorkers !== null) env.SIMBI_NODE_EXTRA_WORKERS = extraWorkers;
    this.proc = spawn(process.execPath, [CHILD_ENTRY], { env });
    this.stdout = new LineReader(this.proc.stdout);
    this.proc.stderr.setEncoding("utf8");
    this.proc.stderr.on("data", (chunk: string) => { this.stderr += chunk; });
    this.closed = new Promise((resolve) => this.proc.on("close", (code) => resolve(code)));
  }

  /** The next stdout line, parsed; fails the test on anything that is not JSON. */
  async next(): Promise<Message | null> {
    const line = await this.stdout.next();
    return line === null ? null : JSON.parse(line) as Message;
  }

  send(message: object): void {
    this.proc.stdin.write(JSON.stringify(message) + "\n");
  }

  sendRaw(text: string): void {
    this.proc.stdin.write(text);
  }

  /** Closes stdin and resolves with the exit code once the child has exited. */
  finish(): Promise<number | null> {
    this.proc.stdin.end();
    return this.exited();
  }

  /** The exit code, once the child has exited and its pipes are drained. */
  exited(): Promise<number | null> {
    return this.closed;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}
