/** Small DOM helpers: elements are built with properties and text, never from HTML strings. */

type Child = Node | string | null | undefined | false;

/** An element with attributes (strings; `true` for a bare attribute) and children (text is escaped). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) el.append(child);
  return el;
}

/** The element with this id, of the expected kind; a missing one is a bug in the page. */
export function byId<T extends HTMLElement = HTMLElement>(id: string, kind?: new () => T): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page has no #${id}`);
  if (kind && !(el instanceof kind)) throw new Error(`#${id} is not a ${kind.name}`);
  return el as T;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

/** A table with a caption-less header row and one row per item; `empty` when there are none. */
export function table<T>(headers: string[], rows: T[], cells: (row: T) => Child[], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows.map((row) => h('tr', {}, ...cells(row).map((c) => h('td', {}, c))))),
    ),
  );
}

/** Shows a message in a status region (role=status or alert), read out by screen readers. */
export function say(el: HTMLElement, message: string, kind: 'info' | 'error' | 'ok' = 'info'): void {
  el.textContent = message;
  el.dataset.kind = kind;
}

export function show(el: HTMLElement, visible: boolean): void {
  el.hidden = !visible;
}
