// The sweep progress bar on stderr: a terminal gets one line redrawn in place; a log
// (not a TTY) gets a plain line at the start, at most every few seconds, and at the end.

import type { SweepProgress } from "../patching/sweep-types.js";
import type { CliStream } from "./context.js";

export interface ProgressOptions {
  /** Print nothing. */
  quiet?: boolean;
  /** Redraw one line (default: the stream's isTTY). */
  tty?: boolean;
  /** Terminal width. */
  width?: number;
  /** Minimum time between two plain lines (default 2000 ms). */
  intervalMs?: number;
  now?: () => number;
}

export interface Progress {
  update(p: SweepProgress): void;
  /** Ends the bar (a TTY gets its newline); safe to call more than once. */
  finish(): void;
}

/** A progress reporter for a sweep labelled `label` (e.g. "direct path k"). */
export function createProgress(stream: CliStream, label: string, options: ProgressOptions = {}): Progress {
  if (options.quiet) return { update() {}, finish() {} };
  const tty = options.tty ?? stream.isTTY === true;
  const now = options.now ?? Date.now;
  const interval = options.intervalMs ?? 2000;
  const width = options.width ?? 80;
  let lastLine = -Infinity;
  let drawn = false;
  let finished = false;
  let lastDone = -1;
  return {
    update(p) {
      if (finished) return;
      if (tty) {
        stream.write(`\r\x1b[2K${barLine(label, p, width)}`);
        drawn = true;
        return;
      }
      const t = now();
      if (p.done === p.total || lastDone < 0 || t - lastLine >= interval) {
        stream.write(`${plainLine(label, p)}\n`);
        lastLine = t;
        lastDone = p.done;
      }
    },
    finish() {
      if (finished) return;
      finished = true;
      if (tty && drawn) stream.write("\n");
    },
  };
}

/** `label [#####.....]  45%  123/270  1.2s, ETA 1.5s`, at most `width` columns. */
export function barLine(label: string, p: SweepProgress, width: number): string {
  const pct = p.total > 0 ? p.done / p.total : 1;
  const tail = ` ${String(Math.floor(pct * 100)).padStart(3)}% ${p.done}/${p.total} ${formatDuration(p.elapsedMs)}${eta(p)}`;
  const barWidth = Math.max(10, Math.min(40, width - label.length - tail.length - 4));
  const full = Math.round(pct * barWidth);
  return `${label} ${"█".repeat(full)}${"░".repeat(barWidth - full)}${tail}`.slice(0, Math.max(width - 1, 20));
}

/** `label: 123/270 (45%), 1.2s elapsed, ETA 1.5s` */
export function plainLine(label: string, p: SweepProgress): string {
  const pct = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100;
  return `${label}: ${p.done}/${p.total} (${pct}%), ${formatDuration(p.elapsedMs)} elapsed${eta(p)}`;
}

function eta(p: SweepProgress): string {
  if (p.done >= p.total) return ", done";
  return p.etaMs === undefined ? "" : `, ETA ${formatDuration(p.etaMs)}`;
}

/** 850ms, 12.3s, 4m05s, 1h02m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
