// The identity, live (Chapter 5). vaelib/live.py writes a 1-D model's
// log P(x, z) on a grid into the page; this script turns two sliders for
// Q = N(m, s^2) into log P(x), the ELBO and KL(Q || P(z|x)), each computed
// from the grid (formulas in vaelib/live.py), and draws P(z|x), Q and the
// ELBO as a function of m. No kernel, no network. Jupyter Book puts every
// script of _static on every page: this one does nothing where there is no
// figure.
(function () {
  "use strict";
  const LOG2PI = Math.log(2 * Math.PI);
  const SVG = "http://www.w3.org/2000/svg";

  function logSumExp(values) {
    const top = Math.max(...values);
    let total = 0;
    for (const v of values) total += Math.exp(v - top);
    return top + Math.log(total);
  }

  // The model on its grid: log P(x), and the ELBO and the KL of any N(m, s^2).
  function grid(data) {
    const n = data.log_joint.length;
    const h = (data.hi - data.lo) / (n - 1);
    const z = Array.from({ length: n }, (_, i) => data.lo + i * h);
    const logW = z.map((_, i) => Math.log(i === 0 || i === n - 1 ? h / 2 : h));
    const lj = data.log_joint;
    const logPx = logSumExp(lj.map((v, i) => v + logW[i]));
    function terms(m, s) {
      let recon = 0; // E_Q[log P(x|z)]
      let cross = 0; // E_Q[log Q(z) - log P(x, z)]
      for (let i = 0; i < n; i++) {
        const u = (z[i] - m) / s;
        const logQ = -0.5 * u * u - Math.log(s) - 0.5 * LOG2PI;
        const wq = Math.exp(logQ + logW[i]);
        if (wq === 0) continue;
        const logPrior = -0.5 * z[i] * z[i] - 0.5 * LOG2PI;
        recon += wq * (lj[i] - logPrior);
        cross += wq * (logQ - lj[i]);
      }
      const klPrior = 0.5 * (m * m + s * s - 1) - Math.log(s); // KL(Q || N(0,1))
      return { elbo: recon - klPrior, kl: cross + logPx };
    }
    return { z, lj, logPx, terms };
  }

  function element(tag, attrs, parent) {
    const ns = ["svg", "path", "line", "text", "circle"].includes(tag);
    const el = ns ? document.createElementNS(SVG, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  // A small plot: axes with ticks and labels; returns a function that maps
  // data to pixels and the group to draw into.
  function plot(parent, xRange, yRange, xLabel, yLabel, xTicks, yTicks) {
    const W = 480, H = 230, L = 58, R = 10, T = 10, B = 46;
    const svg = element("svg", { viewBox: `0 0 ${W} ${H}`, class: "live-plot", role: "img" }, parent);
    const px = (x) => L + ((x - xRange[0]) / (xRange[1] - xRange[0])) * (W - L - R);
    const py = (y) => H - B - ((y - yRange[0]) / (yRange[1] - yRange[0])) * (H - T - B);
    element("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }, svg);
    element("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, svg);
    for (const t of xTicks) {
      element("line", { x1: px(t), y1: H - B, x2: px(t), y2: H - B + 5, class: "axis" }, svg);
      element("text", { x: px(t), y: H - B + 19, "text-anchor": "middle" }, svg).textContent = t;
    }
    for (const t of yTicks) {
      element("line", { x1: L - 5, y1: py(t), x2: L, y2: py(t), class: "axis" }, svg);
      element("text", { x: L - 8, y: py(t) + 5, "text-anchor": "end" }, svg).textContent = t;
    }
    element("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, svg).textContent = xLabel;
    element("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(T + H - B) / 2})` }, svg).textContent = yLabel;
    const line = (xs, ys, cls) => element("path", {
      d: xs.map((x, i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(ys[i]).toFixed(1)}`).join(""),
      class: cls }, svg);
    const legend = (entries) => entries.forEach(([cls, text], k) => {
      const y = T + 14 + 18 * k;
      element("line", { x1: W - R - 165, y1: y - 5, x2: W - R - 141, y2: y - 5, class: cls }, svg);
      element("text", { x: W - R - 135, y: y }, svg).textContent = text;
    });
    return { svg, px, py, line, legend };
  }

  function slider(parent, label, role, range, value) {
    const row = element("label", { class: "live-slider" }, parent);
    row.append(label + " ");
    const input = element("input", { type: "range", min: range[0], max: range[1],
      step: 0.01, value: value, "data-role": role }, row);
    const shown = element("output", { "data-role": role + "-value" }, row);
    return { input, shown };
  }

  function setup(root) {
    const data = JSON.parse(root.querySelector("script[type='application/json']").textContent);
    const model = grid(data);
    root.querySelector("p").remove(); // the fallback text
    const controls = element("div", { class: "live-controls" }, root);
    const mean = slider(controls, "mean m of Q", "mean", data.mean_range, data.initial[0]);
    const scale = slider(controls, "standard deviation s of Q", "scale", data.scale_range, data.initial[1]);

    const zs = [], post = [];
    for (let i = 0; i < model.z.length; i += 8) {
      if (Math.abs(model.z[i]) <= 4) {
        zs.push(model.z[i]);
        post.push(Math.exp(model.lj[i] - model.logPx));
      }
    }
    const densityBox = element("div", {}, root);

    const table = element("table", { class: "live-numbers" }, root);
    const cells = {};
    for (const [key, text] of [["log_px", "log P(x)"], ["elbo", "ELBO"],
      ["kl", "KL(Q ‖ P(z|x))"], ["sum", "ELBO + KL"]]) {
      const tr = element("tr", {}, table);
      element("th", {}, tr).textContent = text;
      cells[key] = element("td", { "data-role": key }, tr);
    }
    cells.log_px.textContent = model.logPx.toFixed(3);

    const ms = [];
    for (let m = data.mean_range[0]; m <= data.mean_range[1] + 1e-9; m += 0.05) ms.push(m);
    const curve = plot(root, data.mean_range, [model.logPx - 6, model.logPx + 2],
      "mean m of Q (at the current s)", "nats", [-3, -2, -1, 0, 1, 2, 3],
      [Math.round(model.logPx - 6), Math.round(model.logPx)]);
    curve.line(data.mean_range, [model.logPx, model.logPx], "live-log-px");
    curve.legend([["live-log-px", "log P(x)"], ["live-elbo", "ELBO of N(m, s²)"]]);
    let elboPath = null, dot = null;

    function update() {
      const m = Number(mean.input.value), s = Number(scale.input.value);
      mean.shown.textContent = m.toFixed(2);
      scale.shown.textContent = s.toFixed(2);
      const { elbo, kl } = model.terms(m, s);
      cells.elbo.textContent = elbo.toFixed(3);
      cells.kl.textContent = kl.toFixed(3);
      cells.sum.textContent = (elbo + kl).toFixed(3);
      const q = zs.map((z) => Math.exp(-0.5 * ((z - m) / s) ** 2) / (s * Math.sqrt(2 * Math.PI)));
      const top = Math.ceil(Math.max(...post, ...q) * 1.35 * 10) / 10;
      densityBox.replaceChildren();
      const dens = plot(densityBox, [-4, 4], [0, top], "latent z", "density",
        [-4, -2, 0, 2, 4], [0, top / 2, top].map((t) => t.toFixed(1)));
      dens.line(zs, post, "live-posterior");
      dens.line(zs, q, "live-q");
      dens.legend([["live-posterior", "P(z|x), exact"], ["live-q", "Q = N(m, s²)"]]);
      const elbos = ms.map((mm) => Math.max(model.terms(mm, s).elbo, model.logPx - 6));
      if (elboPath) elboPath.remove();
      elboPath = curve.line(ms, elbos, "live-elbo");
      if (dot) dot.remove();
      dot = element("circle", { cx: curve.px(m), cy: curve.py(Math.max(elbo, model.logPx - 6)),
        r: 5, class: "live-dot" }, curve.svg);
    }
    mean.input.addEventListener("input", update);
    scale.input.addEventListener("input", update);
    update();
    root.setAttribute("data-ready", "1");
  }

  function init() {
    document.querySelectorAll("div.vaebook-live[data-live='identity']").forEach(setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
