// Formats numbers, durations and times for display. Pure functions: the current time is always a
// parameter, never read here, so every function is testable and deterministic.

/** Milliseconds since the epoch for an RFC 3339 string, or NaN when absent or unparsable. */
export function parseTime(iso) {
  if (typeof iso !== 'string' || iso === '') return NaN;
  return Date.parse(iso);
}

const pad2 = (n) => String(n).padStart(2, '0');

/** A compact duration: "0s", "42s", "3m 05s", "2h 03m", "4d 01h". Negative values count as 0. */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const total = Math.floor(ms / 1000);
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (days > 0) return `${days}d ${pad2(hours)}h`;
  if (hours > 0) return `${hours}h ${pad2(minutes)}m`;
  if (minutes > 0) return `${minutes}m ${pad2(seconds)}s`;
  return `${seconds}s`;
}

/** "in 3m 05s", "12s ago" or "now" for a target time relative to `nowMs`. */
export function formatRelative(targetMs, nowMs) {
  if (!Number.isFinite(targetMs) || !Number.isFinite(nowMs)) return '—';
  const delta = targetMs - nowMs;
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
}

/** Token counts: exact below 10 000, then "12.3k", "4.56M". */
export function formatTokens(n) {
  if (!Number.isFinite(n)) return '—';
  if (n < 10_000) return n.toLocaleString('en-US');
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}

/** US dollars with cents, or "—" when the cost is unknown (null). */
export function formatCost(usd) {
  if (typeof usd !== 'number' || !Number.isFinite(usd)) return '—';
  if (usd > 0 && usd < 0.01) return '< $0.01';
  return `$${usd.toFixed(2)}`;
}

/** Milliseconds of latency, "—" when unknown. */
export function formatLatency(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** Local date and time for an RFC 3339 string, or the raw text when it does not parse. */
export function formatTimestamp(iso) {
  const ms = parseTime(iso);
  if (Number.isNaN(ms)) return iso ? String(iso) : '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Local time of day (HH:MM:SS) for log lines. */
export function formatClock(iso) {
  const ms = parseTime(iso);
  if (Number.isNaN(ms)) return '--:--:--';
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Splits a comma- or newline-separated list typed by a user, dropping blanks and duplicates. */
export function splitList(text) {
  const seen = new Set();
  const out = [];
  for (const part of String(text ?? '').split(/[,\n]/)) {
    const item = part.trim();
    if (item && !seen.has(item)) {
      seen.add(item);
      out.push(item);
    }
  }
  return out;
}

/** Human words for snake_case codes: "input_required" -> "input required". */
export function humanize(code) {
  return String(code ?? '').replaceAll('_', ' ');
}
