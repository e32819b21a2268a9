/**
 * The worker catalogue: clients/catalog.json, generated from queues.yaml by
 * `python -m simbi_workers.client_catalog` and checked by tests/test_client_catalog.py.
 * SIMBI_CLIENT_CATALOG (or the `catalogFile` option) names another one, such as the
 * tests' catalogue with their extra workers.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ClientSetupError } from './errors.js';

// Compiled to clients/typescript/dist/src/: the catalogue and the shared Lua script live
// beside the package in the repository (npm installs a local path as a link to it).
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
export const DEFAULT_CATALOG = path.join(REPO_ROOT, 'clients', 'catalog.json');

export interface WorkerSpec {
  name: string;
  args: string[];
  queue: string;
  timeout: number;
  unique: number | null;
  secretPositions: number[];
}

export interface Catalog {
  /** queues.yaml, as refusals name it */
  queuesFile: string;
  workers: Map<string, WorkerSpec>;
  /** setting defaults by environment variable name (SIMBI_MAX_PAYLOAD_BYTES, ...) */
  settings: Record<string, number>;
}

interface CatalogFile {
  queues_file: string;
  settings: Record<string, number>;
  workers: Record<
    string,
    { args: string[]; queue: string; timeout: number; unique: number | null; secret_args: string[] }
  >;
}

export function loadCatalog(file: string = DEFAULT_CATALOG): Catalog {
  let raw: CatalogFile;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as CatalogFile;
  } catch (error) {
    throw new ClientSetupError(
      `${file}: cannot read the worker catalogue (${(error as Error).message})`,
    );
  }
  const workers = new Map<string, WorkerSpec>();
  for (const [name, spec] of Object.entries(raw.workers)) {
    const secretPositions = spec.secret_args.map((arg) => spec.args.indexOf(arg));
    workers.set(name, {
      name,
      args: spec.args,
      queue: spec.queue,
      timeout: spec.timeout,
      unique: spec.unique,
      secretPositions,
    });
  }
  const queuesFile = path.resolve(path.dirname(file), raw.queues_file);
  return { queuesFile, workers, settings: raw.settings };
}
