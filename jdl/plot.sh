# The plot is drawn by Python (standard library only). The parameters are read from the
# environment, never pasted into the program text, and escaped when written into the SVG.
python3 - <<'PYTHON' || exit 1
import math
import os
from xml.sax.saxutils import escape, quoteattr

function = os.environ["function"]
cycles = int(os.environ["cycles"])
color = os.environ["color"]
title = os.environ.get("title") or f"{function}, {cycles} cycle{'s' if cycles > 1 else ''}"

WAVES = {
    "sin": lambda t: math.sin(2 * math.pi * t),
    "cos": lambda t: math.cos(2 * math.pi * t),
    "square": lambda t: 1.0 if t % 1 < 0.5 else -1.0,
    "triangle": lambda t: 1 - 4 * abs((t + 0.25) % 1 - 0.5),
    "sawtooth": lambda t: 2 * ((t + 0.5) % 1) - 1,
}
wave = WAVES[function]

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 50, 50
plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def x_of(t):
    return LEFT + plot_w * t / cycles


def y_of(v):
    return TOP + plot_h * (1.1 - v) / 2.2  # leave 10 % of room above and below


parts = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
    f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">',
    f"<title>{escape(title)}</title>",
    f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    f'<text x="{WIDTH / 2}" y="30" text-anchor="middle" font-size="17">{escape(title)}</text>',
]
# Grid and y labels.
for v in (-1, -0.5, 0, 0.5, 1):
    y = y_of(v)
    stroke = "#888" if v == 0 else "#ddd"
    parts.append(
        f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{stroke}"/>'
    )
    parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
step = max(1, math.ceil(cycles / 10))  # at most about ten labels on the x axis
for k in range(0, cycles + 1):
    x = x_of(k)
    parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>')
    if k % step == 0:
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 20}" text-anchor="middle">{k}</text>'
        )
parts.append(
    f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#555">'
    "time (periods)</text>"
)
# The curve: four samples per pixel, so that the edges of square and sawtooth look straight.
# The last one is taken just before the end, which belongs to the next period.
samples = 4 * plot_w
times = [cycles * i / samples for i in range(samples)] + [cycles - 1e-9]
points = " ".join(f"{x_of(t):.2f},{y_of(wave(t)):.2f}" for t in times)
parts.append(
    f"<polyline points={quoteattr(points)} fill=\"none\" stroke={quoteattr(color)} "
    'stroke-width="2.5" stroke-linejoin="round"/>'
)
parts.append(
    f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>'
)
parts.append("</svg>")
with open("plot.svg", "w", encoding="utf-8") as svg:
    svg.write("\n".join(parts) + "\n")
PYTHON
