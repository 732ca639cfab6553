// A grouped bar chart as a plain SVG string: one group per input size, one bar per contender, log-scale y axis
// (the contenders differ by orders of magnitude, a linear axis would flatten the fast ones to nothing).

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/**
 * @param {{ title: string, unit: string, groups: string[], series: { label: string, color: string, values: (number|null)[] }[] }} spec
 *   `values[i]` belongs to `groups[i]`; null draws "FAILED".
 */
export function barChart({ title, unit, groups, series }) {
  const width = 960
  const plot = { left: 70, top: 50, width: 640, height: 300 }
  const values = series.flatMap((s) => s.values).filter((v) => v > 0)
  const lo = Math.floor(Math.log10(Math.min(...values)))
  const hi = Math.ceil(Math.log10(Math.max(...values)))
  const y = (v) => plot.top + plot.height - ((Math.log10(v) - lo) / (hi - lo || 1)) * plot.height
  const groupWidth = plot.width / groups.length
  const barWidth = (groupWidth * 0.85) / series.length
  const out = []

  out.push(`<text x="${plot.left}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`)
  for (let e = lo; e <= hi; e++) {
    const v = 10 ** e
    out.push(`<line x1="${plot.left}" x2="${plot.left + plot.width}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`)
    out.push(`<text x="${plot.left - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v >= 1 ? v : v.toFixed(-e)} ${unit}</text>`)
  }
  groups.forEach((group, g) => {
    const x0 = plot.left + g * groupWidth + groupWidth * 0.075
    series.forEach((s, i) => {
      const x = x0 + i * barWidth
      const v = s.values[g]
      if (!(v > 0)) {
        out.push(`<text x="${x + barWidth / 2}" y="${plot.top + plot.height - 4}" font-size="9" fill="#c00" text-anchor="middle" transform="rotate(-90 ${x + barWidth / 2} ${plot.top + plot.height - 4})">FAILED</text>`)
        return
      }
      const top = y(v)
      out.push(`<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(plot.top + plot.height - top).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.label}, ${group}: ${v.toFixed(1)} ${unit}`)}</title></rect>`)
      const label = v < 10 ? v.toFixed(1) : v.toFixed(0)
      out.push(`<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${(top - 3).toFixed(1)}" font-size="9" text-anchor="middle">${label}</text>`)
    })
    out.push(`<text x="${plot.left + g * groupWidth + groupWidth / 2}" y="${plot.top + plot.height + 18}" font-size="12" text-anchor="middle">${esc(group)}</text>`)
  })
  out.push(`<line x1="${plot.left}" x2="${plot.left + plot.width}" y1="${plot.top + plot.height}" y2="${plot.top + plot.height}" stroke="#333"/>`)
  series.forEach((s, i) => {
    const ly = plot.top + 10 + i * 20
    out.push(`<rect x="${plot.left + plot.width + 20}" y="${ly - 9}" width="12" height="12" fill="${s.color}"/>`)
    out.push(`<text x="${plot.left + plot.width + 38}" y="${ly + 1}" font-size="11">${esc(s.label)}</text>`)
  })
  const height = plot.top + plot.height + 36
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${out.join('\n')}\n</svg>\n`
}
