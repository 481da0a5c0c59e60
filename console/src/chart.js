// A sequence's history chart (uPlot): mean line with the min/max band of each
// downsampled bucket, then live points appended as they arrive.
import uPlot from "uplot";

const MAX_POINTS = 5000; // live points kept before the oldest are dropped

export class SequenceChart {
  constructor(container, { units = "", decimals = null } = {}) {
    this.container = container;
    this.units = units;
    this.decimals = decimals;
    this.xs = [];
    this.mean = [];
    this.min = [];
    this.max = [];
    this.plot = null;
    this.resize = () => this.plot?.setSize(this._size());
    window.addEventListener("resize", this.resize);
  }

  _size() {
    return { width: Math.max(300, this.container.clientWidth || 600), height: 280 };
  }

  _format(v) {
    if (v === null || v === undefined) return "";
    const text = this.decimals === null || this.decimals === undefined ? String(+v.toPrecision(6)) : v.toFixed(this.decimals);
    return this.units ? `${text} ${this.units}` : text;
  }

  /** Replace the data with history buckets [{timestamp, min, max, mean}] or values [{timestamp, value}]. */
  load(rows) {
    const sorted = [...rows].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    this.xs = sorted.map((r) => Date.parse(r.timestamp) / 1000);
    this.mean = sorted.map((r) => r.mean ?? r.value ?? null);
    this.min = sorted.map((r) => r.min ?? r.value ?? null);
    this.max = sorted.map((r) => r.max ?? r.value ?? null);
    this._draw();
  }

  /** Append one live value (ignored if older than the last point). */
  push(timestampMs, value) {
    const x = timestampMs / 1000;
    if (typeof value !== "number" || !Number.isFinite(value)) return;
    const last = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
    if (x < last) return;
    if (x === last) {
      this.mean[this.mean.length - 1] = value;
    } else {
      this.xs.push(x);
      this.mean.push(value);
      this.min.push(value);
      this.max.push(value);
      if (this.xs.length > MAX_POINTS) for (const a of [this.xs, this.mean, this.min, this.max]) a.shift();
    }
    this._draw();
  }

  get points() {
    return this.xs.length;
  }

  _draw() {
    this.container.dataset.points = String(this.xs.length);
    const data = [this.xs, this.mean, this.min, this.max];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const fmt = (u, v) => this._format(v);
    this.plot = new uPlot({
      ...this._size(),
      class: "sequence-chart",
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [{}, { values: (u, ticks) => ticks.map((t) => this._format(t)), size: 70 }],
      series: [
        {},
        { label: "value", stroke: "#2563eb", width: 2, value: fmt, points: { show: (u) => u.data[0].length < 60 } },
        { label: "min", stroke: "rgba(37,99,235,0.25)", width: 1, value: fmt, points: { show: false } },
        { label: "max", stroke: "rgba(37,99,235,0.25)", width: 1, value: fmt, points: { show: false } },
      ],
      bands: [{ series: [3, 2], fill: "rgba(37,99,235,0.08)" }],
    }, data, this.container);
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
    this.plot?.destroy();
    this.plot = null;
  }
}
