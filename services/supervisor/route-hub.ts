/**
 * Publishes the routing table (routes and host assignments) to every subscribed ingress: the whole
 * table when one subscribes, then only what changed. With 50,000 workers a whole table per deploy
 * was ~11 MB to send, parse and index again, and the index stalled every request ingress held.
 */
import type { RpcStub } from 'capnweb';
import type { Logger } from '../../lib/log.ts';
import { RoutesDigest, routeText } from '../../lib/drift.ts';
import { routeKey } from '../../lib/routes.ts';
import type { HostAssignment, Route, RouteListener, RoutingPatch, RoutingTable } from '../../schemas/routes.ts';
import type { CodeStore } from './store.ts';

/** See RouteHub.publish. */
const PUBLISH_US_PER_ROUTE = 10;

export class RouteHub {
  readonly #listeners = new Set<RpcStub<RouteListener>>();
  readonly #store: Pick<CodeStore, 'routingTable'>;
  readonly #log: Logger;
  /** The table as last published: each route by its key, with its text (what a change is found by). */
  readonly #routes = new Map<string, { route: Route; text: string }>();
  #hosts: HostAssignment[] = [];
  #hostsText = '[]';
  readonly #digest = new RoutesDigest();
  #version = 0;

  constructor({ store, log }: { store: Pick<CodeStore, 'routingTable'>; log: Logger }) {
    this.#store = store;
    this.#log = log;
    this.#diff(store.routingTable());
  }

  add(listener: RpcStub<RouteListener>): RoutingTable {
    this.#listeners.add(listener);
    listener.onRpcBroken(() => {
      this.#listeners.delete(listener);
      listener[Symbol.dispose]();
    });
    return this.table();
  }

  /** The table as last published, and its version: what the next patch applies to. */
  table(): RoutingTable {
    return { version: this.#version, routes: [...this.#routes.values()].map((r) => r.route), hosts: this.#hosts };
  }

  /** What drift compares ingress's digest with. */
  digest(): string {
    return this.#digest.value();
  }

  #pending: NodeJS.Timeout | undefined;
  #lastSent = 0;
  #lastSize = 0;
  #told: NodeJS.Immediate | undefined;
  /** Told once per event-loop turn with changes (in-process followers of worker changes: revocations), not held back with the table. */
  onPublish: () => void = () => {};

  /**
   * Send what changed since the last publication, once for all the changes made until it goes. A burst
   * of deploys sends one patch, not one per deploy; and the table is read and compared again at most
   * every 10 µs per route it held last time (immediately up to a few hundred routes; every 0.5 s at
   * 50,000), so a mass deploy costs the supervisor a bounded share of its time.
   */
  publish(): void {
    this.#told ??= setImmediate(() => {
      this.#told = undefined;
      this.onPublish();
    });
    if (this.#pending) return;
    const wait = Math.max(0, this.#lastSent + (this.#lastSize * PUBLISH_US_PER_ROUTE) / 1000 - Date.now());
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      const patch = this.#diff(this.#store.routingTable());
      this.#lastSent = Date.now();
      this.#lastSize = this.#routes.size;
      if (!patch) return;
      for (const l of this.#listeners) {
        l.patch(patch).catch((e: Error) => this.#log.warn('route update failed', { error: e.message }));
      }
    }, wait).unref();
  }

  /** Takes `table` as the published one; what changed from the previous one, if anything did. */
  #diff(table: RoutingTable): RoutingPatch | undefined {
    const set: Route[] = [];
    const removed: Route['order'][] = [];
    const now = new Set<string>();
    for (const route of table.routes) {
      const key = routeKey(route.order);
      const text = routeText(route);
      now.add(key);
      const old = this.#routes.get(key);
      if (old?.text === text) continue;
      if (old) this.#digest.toggle(old.text);
      this.#digest.toggle(text);
      this.#routes.set(key, { route, text });
      set.push(route);
    }
    for (const [key, old] of this.#routes) {
      if (now.has(key)) continue;
      this.#routes.delete(key);
      this.#digest.toggle(old.text);
      removed.push(old.route.order);
    }
    const hostsText = JSON.stringify(table.hosts);
    const hostsChanged = hostsText !== this.#hostsText;
    if (hostsChanged) {
      this.#hosts = table.hosts;
      this.#hostsText = hostsText;
      this.#digest.setHosts(table.hosts);
    }
    if (set.length === 0 && removed.length === 0 && !hostsChanged && this.#version > 0) return undefined;
    const from = this.#version++;
    return { from, to: this.#version, set, removed, ...(hostsChanged ? { hosts: table.hosts } : {}) };
  }
}
