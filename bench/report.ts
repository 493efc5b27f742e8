import type { Row } from './row.js';

const fmt = (x: number | null): string => (x === null ? '—' : String(x));

export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    '| id | row | metric | value | baseline | peer | floor | ratio | goal | met |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.id} | ${r.name} | ${r.metric} (${r.unit}) | ${fmt(r.value)} | ${fmt(r.baseline)} | ${fmt(r.peer)} | ${fmt(r.floor)} | ${r.ratio} | ${r.goal} | ${r.met ? 'yes' : '**no**'} |`,
    );
  }
  return lines.join('\n');
}

export function markdownReport(rows: readonly Row[], meta: { node: string; cpus: number; date: string; quick: boolean }): string {
  const details = rows
    .filter((r) => r.extra !== undefined)
    .map((r) => `- **${r.id}**: ${Object.entries(r.extra!).map(([k, v]) => `${k} ${v}`).join('; ')}`);
  return [
    `# cmkit benchmark`,
    '',
    `Node ${meta.node}, ${meta.cpus} CPUs, ${meta.date}${meta.quick ? ' (--quick)' : ''}. Medians; every ratio's two sides were measured in this run.`,
    '',
    markdownTable(rows),
    '',
    '## Further numbers',
    '',
    ...details,
    '',
  ].join('\n');
}

/** A bar per row: how far the measured ratio is from its goal (goal = 1.0, the line). */
export function svgChart(rows: readonly Row[], progressOf: (r: Row) => number): string {
  const rowH = 28;
  const left = 330;
  const width = 820;
  const scale = 200; // px per unit of goal progress
  const height = 50 + rows.length * rowH;
  const bars = rows.map((r, i) => {
    const y = 36 + i * rowH;
    const p = Math.max(0, Math.min(progressOf(r), 2));
    const color = r.met ? '#2e7d32' : '#c62828';
    const label = `${r.id} ${r.name}`.slice(0, 48).replace(/&/g, '&amp;').replace(/</g, '&lt;');
    return [
      `<text x="8" y="${y + 15}" font-size="12">${label}</text>`,
      `<rect x="${left}" y="${y + 3}" width="${(p * scale).toFixed(1)}" height="16" fill="${color}"/>`,
      `<text x="${left + p * scale + 6}" y="${y + 15}" font-size="11">${r.ratio} (${r.met ? 'met' : 'not met'})</text>`,
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">cmkit: each row's ratio against its goal (the line is the goal)</text>`,
    `<line x1="${left + scale}" y1="30" x2="${left + scale}" y2="${height - 6}" stroke="#333" stroke-dasharray="4 3"/>`,
    ...bars,
    '</svg>',
    '',
  ].join('\n');
}
