/** The settings a client reads from the environment, with the defaults of catalog.json. */
import { ClientSetupError } from './errors.js';

export interface Settings {
  maxPayloadBytes: number;
  resultTtl: number;
  failureTtl: number;
}

export function readSettings(defaults: Record<string, number>, env: NodeJS.ProcessEnv): Settings {
  return {
    maxPayloadBytes: readNumber('SIMBI_MAX_PAYLOAD_BYTES', defaults, env),
    resultTtl: readNumber('SIMBI_RESULT_TTL', defaults, env),
    failureTtl: readNumber('SIMBI_FAILURE_TTL', defaults, env),
  };
}

function readNumber(
  name: string,
  defaults: Record<string, number>,
  env: NodeJS.ProcessEnv,
): number {
  const text = env[name];
  if (text === undefined || text === '') {
    const fallback = defaults[name];
    if (fallback === undefined)
      throw new ClientSetupError(`the worker catalogue has no default for ${name}`);
    return fallback;
  }
  if (!/^\d+$/.test(text.trim()))
    throw new ClientSetupError(`${name} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text.trim());
}
