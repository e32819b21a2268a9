// The guest protocol, version 1 (docs/protocol.md): JSON lines on stdin and stdout.
// Nothing but protocol messages may reach stdout, so console output goes to stderr.

import type { Readable, Writable } from "node:stream";
import { format } from "node:util";

export const PROTOCOL_VERSION = 1;

export interface ErrorPayload {
  class: string;
  message: string;
  backtrace: string[];
  retryable: boolean;
  retry_after_seconds: number | null;
}

export interface JobMessage {
  type: "job";
  job_id: string;
  worker: string;
  args: unknown[];
  attempt: number;
  queue?: string;
  timeout_seconds?: number;
  deadline_ms?: number;
}

export interface DoneMessage {
  type: "done";
  job_id: string;
  value?: unknown;
  skipped?: string;
  error?: ErrorPayload;
}

/** A message from the host: a JSON object with a string `type`; fields are unchecked. */
export interface InboundMessage {
  type: string;
  [field: string]: unknown;
}

/** Both directions of the protocol, as the host client and the job loop use them. */
export interface Channel {
  send(message: object): void;
  /** The next message from the host, or null at end of input. */
  receive(): Promise<InboundMessage | null>;
  /** The host broke the protocol: there is no way to go on, so the child exits. */
  fail(reason: string): never;
}

/** Sends console.log, info, warn and debug to stderr (console.error already goes there). */
export function redirectConsole(): void {
  const toStderr = (...items: unknown[]): void => {
    process.stderr.write(format(...items) + "\n");
  };
  console.log = toStderr;
  console.info = toStderr;
  console.warn = toStderr;
  console.debug = toStderr;
}

/** Splits a stream into lines of any length; pieces are joined once per line. */
export class LineReader {
  private pieces: string[] = [];
  private lines: string[] = [];
  private waiters: ((line: string | null) => void)[] = [];
  private ended = false;

  constructor(stream: Readable) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => this.push(chunk));
    stream.on("end", () => this.finish());
  }

  next(): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private push(chunk: string): void {
    let start = 0;
    let newline = chunk.indexOf("\n");
    while (newline !== -1) {
      this.pieces.push(chunk.slice(start, newline));
      this.deliver(this.pieces.join(""));
      this.pieces = [];
      start = newline + 1;
      newline = chunk.indexOf("\n", start);
    }
    if (start < chunk.length) this.pieces.push(chunk.slice(start));
  }

  private finish(): void {
    // NOTE: a last line without "\n" still counts; the host should not send one.
    if (this.pieces.length > 0) this.deliver(this.pieces.join(""));
    this.pieces = [];
    this.ended = true;
    for (const waiter of this.waiters.splice(0)) waiter(null);
  }

  private deliver(line: string): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(line);
    else this.lines.push(line);
  }
}

export class StdioChannel implements Channel {
  private reader: LineReader;

  constructor(input: Readable, private output: Writable) {
    this.reader = new LineReader(input);
  }

  send(message: object): void {
    // Stringify first: a value JSON cannot encode throws here, before anything is written.
    const line = JSON.stringify(message) + "\n";
    this.output.write(line);
  }

  async receive(): Promise<InboundMessage | null> {
    let line = await this.reader.next();
    while (line !== null && line.trim() === "") line = await this.reader.next();
    return line === null ? null : this.parse(line);
  }

  fail(reason: string): never {
    process.stderr.write(`protocol error: ${reason}\n`);
    process.exit(1);
  }

  private parse(line: string): InboundMessage {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.fail(`the host sent a line that is not JSON: ${line.slice(0, 200)}`);
    }
    if (!isInbound(message)) {
      this.fail(`the host sent a line without a string "type": ${line.slice(0, 200)}`);
    }
    return message;
  }
}

function isInbound(message: unknown): message is InboundMessage {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return false;
  return typeof (message as { type?: unknown }).type === "string";
}

/** What is wrong with a `job` message whose job_id is fine, or null when nothing is. */
export function jobProblem(message: InboundMessage): string | null {
  if (typeof message.worker !== "string") return "its worker is not a string";
  if (!Array.isArray(message.args)) return "its args are not a list";
  if (!Number.isInteger(message.attempt)) return "its attempt is not a whole number";
  return null;
}
