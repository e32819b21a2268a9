// Host calls: a child reaches databases and outside services only by asking the host
// (docs/protocol.md, `call` and `reply`).

import type { Channel, InboundMessage } from "./protocol";

export type CallParams = Record<string, unknown>;

export interface Host {
  call(service: string, method: string, params: CallParams): Promise<unknown>;
}

/** An error reply from the host; a worker that does not catch it fails with its fields. */
export class HostError extends Error {
  constructor(
    readonly className: string,
    message: string,
    readonly retryable: boolean,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = "HostError";
  }
}

// call_id increases over the child's whole life, not per job, so ids never repeat.
let lastCallId = 0;

/** The host as seen from one job: calls go out one at a time, tagged with the job id. */
export class ChannelHost implements Host {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly channel: Channel,
    private readonly jobId: string,
  ) {}

  call(service: string, method: string, params: CallParams): Promise<unknown> {
    if (this.closed) {
      const message = `host call ${service}.${method} after job ${this.jobId} finished`;
      return Promise.reject(new Error(message));
    }
    // The protocol allows one call in flight: calls made together wait their turn.
    const result = this.queue.then(() => this.roundTrip(service, method, params));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Waits for calls still in flight, so their replies are read before the next job. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
  }

  private async roundTrip(service: string, method: string, params: CallParams) {
    const callId = ++lastCallId;
    const call = { type: "call", call_id: callId, job_id: this.jobId, service, method, params };
    this.channel.send(call);

    const reply = await this.channel.receive();
    if (reply === null) {
      throw new Error(`the host closed stdin before replying to ${service}.${method}`);
    }
    if (reply.type !== "reply" || reply.call_id !== callId) {
      this.channel.fail(`expected the reply to call ${callId}, got ${describe(reply)}`);
    }
    if (reply.error !== undefined && reply.error !== null) throw toHostError(reply.error);
    return reply.value ?? null;
  }
}

function describe(message: InboundMessage): string {
  const callId = "call_id" in message ? ` with call_id ${JSON.stringify(message.call_id)}` : "";
  return `a "${message.type}" message${callId}`;
}

function toHostError(error: unknown): HostError {
  const fields = (typeof error === "object" && error !== null ? error : {}) as {
    class?: unknown; message?: unknown; retryable?: unknown; retry_after_seconds?: unknown;
  };
  const className = typeof fields.class === "string" ? fields.class : "HostError";
  const message = typeof fields.message === "string" ? fields.message : JSON.stringify(error);
  // A reply that does not say is treated like any other exception: retryable.
  const retryable = fields.retryable !== false;
  const retryAfter = typeof fields.retry_after_seconds === "number"
    ? fields.retry_after_seconds : null;
  return new HostError(className, message, retryable, retryAfter);
}
