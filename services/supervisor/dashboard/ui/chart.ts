/**
 * A small line chart of one series over the last hour (a value per minute): SVG drawn through the DOM
 * (no markup parsed), with its latest and highest values written out beside it for those who do not
 * read charts, and a title for screen readers.
 */
const SVG = 'http://www.w3.org/2000/svg';
const W = 240;
const H = 60;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** `values` oldest first; a null is a minute without a value (no requests: no p99). */
export function chart(id: string, title: string, values: (number | null)[], format: (n: number) => string): HTMLElement {
  const known = values.filter((v): v is number => v !== null);
  const max = Math.max(0, ...known);
  const last = values.at(-1);
  const x = (i: number) => (2 + (i / Math.max(1, values.length - 1)) * (W - 4)).toFixed(1);
  const y = (v: number) => (H - 2 - (max > 0 ? (v / max) * (H - 4) : 0)).toFixed(1);
  const drawing = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': `${id}-title` });
  const label = svg('title', { id: `${id}-title` });
  label.textContent = `${title}, last hour: latest ${last == null ? 'none' : format(last)}, highest ${format(max)}`;
  drawing.append(label, svg('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'axis' }));
  // One polyline per run of known values, so a gap (no requests) shows as a gap; a lone value is a dot.
  let run: [string, string][] = [];
  const flush = () => {
    if (run.length === 1) drawing.append(svg('circle', { cx: run[0]![0], cy: run[0]![1], r: 2.5, class: 'dot' }));
    else if (run.length) drawing.append(svg('polyline', { points: run.map((p) => p.join(',')).join(' '), class: 'series' }));
    run = [];
  };
  values.forEach((v, i) => (v === null ? flush() : run.push([x(i), y(v)])));
  flush();
  const figure = document.createElement('figure');
  figure.className = 'chart';
  figure.id = id;
  const caption = document.createElement('figcaption');
  caption.append(title, document.createElement('br'), `now ${last == null ? '—' : format(last)} · max ${format(max)}`);
  figure.append(caption, drawing);
  return figure;
}
