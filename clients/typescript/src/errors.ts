/** The root of every error this client raises on purpose. */
export class SimbiClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * An enqueue was refused before anything reached Redis: unknown worker, wrong argument
 * count, an argument that is not JSON, an oversized payload, a bad delay or time. The
 * message is the Python client's, word for word (clients/vectors.json).
 */
export class JobInputError extends SimbiClientError {}

/** The catalogue, the Lua script or Redis could not be reached or read. */
export class ClientSetupError extends SimbiClientError {}
