// A worker with a cron trigger: scheduled() records each run in its own database; GET / lists them.
// Deploy: npx cordon deploy --config examples/cron/wrangler.jsonc, then: npx cordon trigger cron
interface Env {
  DB: { sql: { exec(q: string, ...b: unknown[]): { toArray(): unknown[] } } };
}

const table = (env: Env) => env.DB.sql.exec('CREATE TABLE IF NOT EXISTS runs (cron TEXT, scheduled_time INTEGER, type TEXT)');

export default {
  async scheduled(event: { cron: string; scheduledTime: number; type: string }, env: Env, ctx: { waitUntil(p: Promise<unknown>): void }): Promise<void> {
    table(env);
    if (event.cron === '13 13 13 1 *') throw new Error('this cron always fails');
    // waitUntil work finishes before the run counts as done.
    ctx.waitUntil(Promise.resolve().then(() => env.DB.sql.exec('INSERT INTO runs VALUES (?, ?, ?)', event.cron, event.scheduledTime, event.type)));
  },
  async fetch(_request: Request, env: Env): Promise<Response> {
    table(env);
    return Response.json(env.DB.sql.exec('SELECT cron, scheduled_time AS scheduledTime, type FROM runs').toArray());
  },
};
