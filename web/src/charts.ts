import { h } from './dom.ts';

/** Hand-drawn SVG charts: each has a title, a description, and a table of its numbers beside it. */

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function chartRoot(width: number, height: number, title: string, description: string, id: string): SVGSVGElement {
  return svg(
    'svg',
    { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`, class: 'chart', id },
    svg('title', { id: `${id}-title` }, title),
    svg('desc', { id: `${id}-desc` }, description),
  );
}

export interface ShareBar {
  name: string;
  targetPpm: number;
  actualPpm: number;
}

/** Target vs actual share per operator: two horizontal bars each, on a 0–100 % scale. */
export function shareChart(bars: ShareBar[], id = 'share-chart'): SVGSVGElement {
  const label = 110;
  const width = 560;
  const barH = 14;
  const rowH = 2 * barH + 14;
  const height = 30 + bars.length * rowH;
  const scale = (ppm: number) => (Math.max(0, Math.min(ppm, 1_000_000)) / 1_000_000) * (width - label - 60);
  const root = chartRoot(
    width,
    height,
    'Target and actual share of your balance per operator',
    bars.map((b) => `${b.name}: target ${(b.targetPpm / 10_000).toFixed(1)} %, actual ${(b.actualPpm / 10_000).toFixed(1)} %`).join('; '),
    id,
  );
  root.append(
    svg('rect', { x: label, y: 4, width: 12, height: 10, class: 'bar-target' }),
    svg('text', { x: label + 16, y: 13, class: 'legend' }, 'target'),
    svg('rect', { x: label + 80, y: 4, width: 12, height: 10, class: 'bar-actual' }),
    svg('text', { x: label + 96, y: 13, class: 'legend' }, 'actual'),
  );
  bars.forEach((b, i) => {
    const y = 26 + i * rowH;
    root.append(
      svg('text', { x: 0, y: y + barH + 3, class: 'label' }, b.name),
      svg('rect', { x: label, y, width: scale(b.targetPpm), height: barH, class: 'bar-target' }),
      svg('text', { x: label + scale(b.targetPpm) + 4, y: y + barH - 3, class: 'value' }, `${(b.targetPpm / 10_000).toFixed(1)} %`),
      svg('rect', { x: label, y: y + barH + 2, width: scale(b.actualPpm), height: barH, class: 'bar-actual' }),
      svg('text', { x: label + scale(b.actualPpm) + 4, y: y + 2 * barH - 1, class: 'value' }, `${(b.actualPpm / 10_000).toFixed(1)} %`),
    );
  });
  return root;
}

export interface LinePoint {
  at: number;
  value: bigint;
}

/** A step line of a balance over time, in sats, with the first and last dates and the maximum. */
export function balanceChart(points: LinePoint[], id = 'balance-chart'): SVGSVGElement {
  const width = 560;
  const height = 200;
  const pad = { left: 70, right: 10, top: 10, bottom: 24 };
  const first = points[0];
  const last = points[points.length - 1];
  const max = points.reduce((m, p) => (p.value > m ? p.value : m), 0n);
  const root = chartRoot(
    width,
    height,
    'Your balance over time',
    first && last ? `From ${fmtSat(first.value)} on ${day(first.at)} to ${fmtSat(last.value)} on ${day(last.at)}; highest ${fmtSat(max)}` : 'No balance yet',
    id,
  );
  if (!first || !last) return root;
  const t0 = first.at;
  const t1 = Math.max(last.at, t0 + 1);
  const x = (t: number) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  // Scale in whole sats through Number: the chart needs positions, not exact amounts.
  const maxSat = Math.max(1, Number(max / 1000n));
  const y = (v: bigint) => pad.top + (1 - Number(v / 1000n) / maxSat) * (height - pad.top - pad.bottom);
  let d = `M ${x(first.at).toFixed(1)} ${y(first.value).toFixed(1)}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i]!;
    const prev = points[i - 1]!;
    d += ` L ${x(p.at).toFixed(1)} ${y(prev.value).toFixed(1)} L ${x(p.at).toFixed(1)} ${y(p.value).toFixed(1)}`;
  }
  root.append(
    svg('line', { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: 'axis' }),
    svg('line', { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: 'axis' }),
    svg('text', { x: pad.left - 4, y: pad.top + 8, class: 'tick', 'text-anchor': 'end' }, fmtSat(max)),
    svg('text', { x: pad.left - 4, y: height - pad.bottom, class: 'tick', 'text-anchor': 'end' }, '0'),
    svg('text', { x: pad.left, y: height - 6, class: 'tick' }, day(t0)),
    svg('text', { x: width - pad.right, y: height - 6, class: 'tick', 'text-anchor': 'end' }, day(last.at)),
    svg('path', { d, class: 'line' }),
  );
  return root;
}

function fmtSat(msat: bigint): string {
  return `${(msat / 1000n).toLocaleString('en-US')} sat`;
}

function day(unix: number): string {
  return new Date(unix * 1000).toISOString().slice(0, 16).replace('T', ' ');
}

/** A figure: the chart and, in a disclosure, the same numbers as a table. */
export function figure(chart: SVGSVGElement, table: HTMLElement): HTMLElement {
  return h('figure', {}, chart, h('details', {}, h('summary', {}, 'Show the numbers'), table));
}
