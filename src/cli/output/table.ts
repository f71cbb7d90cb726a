/** A cell that may be coloured on a terminal: its tone says what the value means, not how it looks. */
export type Tone = 'good' | 'warn' | 'bad' | 'dim';
export type Cell = string | { readonly text: string; readonly tone: Tone | null };

const ANSI: Record<Tone, string> = { good: '\u001b[32m', warn: '\u001b[33m', bad: '\u001b[31m', dim: '\u001b[2m' };
const RESET = '\u001b[0m';

const textOf = (cell: Cell): string => (typeof cell === 'string' ? cell : cell.text);

export function paint(cell: Cell, colour: boolean): string {
  if (typeof cell === 'string' || cell.tone === null || !colour) return textOf(cell);
  return `${ANSI[cell.tone]}${cell.text}${RESET}`;
}

/** Columns padded to their widest cell (colour codes do not count), two spaces apart, kubectl style. */
export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[], colour: boolean): string {
  const table = new TableWriter(headers, colour);
  return table.header(rows) + rows.map((r) => table.row(r)).join('');
}

const width = (cell: Cell): number => [...textOf(cell)].length;

/**
 * A table printed a row at a time (`-w`): the widths are those of the first rows (or `minWidths`,
 * wide enough for every value a column can take), so later rows line up with them; a longer value
 * pushes only its own line.
 */
export class TableWriter {
  #widths: number[];

  constructor(
    readonly headers: readonly string[],
    private readonly colour: boolean,
    private readonly minWidths: readonly number[] = [],
  ) {
    this.#widths = headers.map((h, i) => Math.max(h.length, minWidths[i] ?? 0));
  }

  /** The header line, with the widths of `rows` (the ones printed right after it). */
  header(rows: readonly (readonly Cell[])[]): string {
    this.#widths = this.headers.map((h, i) => Math.max(h.length, this.minWidths[i] ?? 0, ...rows.map((r) => width(r[i] ?? ''))));
    return this.row(this.headers);
  }

  row(cells: readonly Cell[]): string {
    const line = cells
      .map((cell, i) => (i === cells.length - 1 ? paint(cell, this.colour) : paint(cell, this.colour) + ' '.repeat(Math.max(0, (this.#widths[i] ?? 0) - width(cell)) + 2)))
      .join('');
    return `${line.trimEnd()}\n`;
  }
}

/** What a status word means, for its colour. */
export function toneOf(word: string): Tone | null {
  if (['running', 'healthy', 'ready', 'complete'].includes(word)) return 'good';
  if (['pending', 'scheduled', 'starting', 'stopping', 'degraded', 'progressing', 'paused', 'cordoned', 'draining'].includes(word)) return 'warn';
  if (['failed', 'unhealthy', 'not_ready'].includes(word)) return 'bad';
  if (['stopped', 'deleted'].includes(word)) return 'dim';
  return null;
}

export const status = (word: string): Cell => ({ text: word, tone: toneOf(word) });

/** Age as kubectl prints it: 45s, 12m, 3h, 5d. */
export function age(iso: string | null, now: number = Date.now()): string {
  if (iso === null) return '<none>';
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7_200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3_600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function useColour(isTTY: boolean, env: Readonly<Record<string, string | undefined>>): boolean {
  return isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}
