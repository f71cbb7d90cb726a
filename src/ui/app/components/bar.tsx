/** How much of a node's capacity is allocated: a bar with the numbers beside it. */
export function Bar({ label, used, total, unit }: { label: string; used: number; total: number; unit: string }) {
  const ratio = total > 0 ? Math.min(1, used / total) : 0;
  const tone = ratio >= 0.9 ? 'bad' : ratio >= 0.7 ? 'warn' : 'good';
  const text = `${round(used)} / ${round(total)} ${unit}`;
  return (
    <div class="bar">
      <span class="bar-label">{label}</span>
      <div class={`bar-track tone-${tone}`} role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={total} aria-valuenow={used} aria-valuetext={text}>
        {/* Set through the CSSOM, which the Content-Security-Policy allows (an inline style attribute it would not). */}
        <div class="bar-fill" style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      </div>
      <span class="bar-text">{text}</span>
    </div>
  );
}

const round = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));
