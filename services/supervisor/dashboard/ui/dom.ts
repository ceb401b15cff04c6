/**
 * Building the page: elements from a tag, attributes and children, where every string child becomes a
 * text node. Nothing is ever parsed as HTML (no innerHTML anywhere), so a worker, a log line or an
 * error named `<img src=x onerror=…>` shows as those characters.
 */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

/** A link inside the dashboard: only `#/…` routes, so a value used in one can never become `javascript:`. */
export function link(route: string[], ...children: Child[]): HTMLAnchorElement {
  return h('a', { href: '#/' + route.map(encodeURIComponent).join('/') }, ...children);
}

/**
 * A link to a trace in the operator's Jaeger (CORDON_JAEGER_URL, an http(s) URL checked at start), or
 * nothing when there is none or the id is not a trace id.
 */
export function traceLink(jaegerUrl: string | null, traceId: string | undefined, label = 'trace'): HTMLAnchorElement | undefined {
  if (!jaegerUrl || !traceId || !/^[0-9a-f]{32}$/.test(traceId)) return undefined;
  return h('a', { href: `${jaegerUrl}/trace/${traceId}`, class: 'trace', target: '_blank', rel: 'noopener noreferrer' }, label);
}

export function table(head: string[], rows: Child[][], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          head.map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            {},
            r.map((c) => h('td', {}, c)),
          ),
        ),
      ),
    ),
  );
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/**
 * A button that runs an action: disabled while it runs (no double submit), and a failure shown as an
 * alert beside it rather than lost as an unhandled rejection.
 */
export function action(label: string, attrs: Attrs, run: () => Promise<unknown>): HTMLButtonElement {
  const b: HTMLButtonElement = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    const shown = b.nextElementSibling;
    if (shown?.matches('.action-error')) shown.remove();
    try {
      await run();
    } catch (e) {
      b.after(h('span', { class: 'error action-error', role: 'alert' }, (e as Error).message));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}
