/** The route table the supervisor pushes to ingress. */
import type { WorkerTarget } from './worker.ts';

export interface Route {
  /** Cloudflare-style pattern: `host/path`, `*` wildcards, e.g. `*\/hello*` or `api.example.com/*`. */
  pattern: string;
  cordon: string;
  target: WorkerTarget;
}

/** Ingress exports this to the supervisor so route changes arrive live. */
export interface RouteListener {
  update(routes: Route[]): void;
}
