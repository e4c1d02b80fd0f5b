/* Two experiments side by side: counts, detections on synchronised maps (true positives, false positives, misses),
   the lists of false positives and misses (click: zoom to one), the metric difference, and both experiments' plots
   overlaid. Used by the compare page (imagery as tiles from the server) and by a saved report (imagery inline, no
   server): window.GeofoundryCompareView.show(box, sides, diff, imagery). */
(function () {
  "use strict";
  const OUTCOME = {tp: {colour: "#22c55e", label: "true positive"}, fp: {colour: "#ef4444", label: "false positive"},
                   fn: {colour: "#facc15", label: "missed (false negative)"}};
  const SIDE_COLOURS = ["#38bdf8", "#f97316"];
  const SIDES = ["a", "b"];
  const LIST_MAX = 300;
  const SVG = "http://www.w3.org/2000/svg";
  const {el} = window.GeofoundryDom;
  const svgEl = (tag, attrs = {}, text) => {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const CELL_CHARS = 40;  // longer values (a reason, a list) are cut, whole in the cell's tooltip
  const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : String(v ?? "–"));
  const cell = (v, attrs = {}) => {
    const text = fmt(v);
    return el("td", {...attrs, title: text.length > CELL_CHARS ? text : null,
                     text: text.length > CELL_CHARS ? text.slice(0, CELL_CHARS - 1) + "…" : text});
  };

  // ---------------------------------------------------------------- metric difference (dvc metrics diff)
  function diffTable(diff, sides, onlyChanged) {
    const table = el("table", {class: "cmp-diff"});
    table.append(el("tr", {}, el("th", {class: "key", text: "path"}), el("th", {class: "key", text: "metric"}),
                    el("th", {text: `A: ${sides[0].row.name}`}), el("th", {text: `B: ${sides[1].row.name}`}),
                    el("th", {text: "change (B − A)"})));
    for (const path of Object.keys(diff).sort()) {
      for (const metric of Object.keys(diff[path]).sort()) {
        const d = diff[path][metric];
        if (onlyChanged && d.old === d.new) continue;
        const change = d.diff === undefined ? "–" : (d.diff > 0 ? "+" : "") + fmt(d.diff);
        table.append(el("tr", {"data-metric": `${path}:${metric}`}, el("td", {class: "mono small", text: path}),
                        el("td", {class: "mono", text: metric}), cell(d.old), cell(d.new),
                        el("td", {class: d.diff > 0 ? "up" : d.diff < 0 ? "down" : "", text: change})));
      }
    }
    return table;
  }

  function paramsTable(sides) {
    const [a, b] = sides.map((s) => s.row.params);
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
    if (!keys.length) return el("p", {class: "muted", text: "the same params"});
    const table = el("table", {class: "cmp-diff"});
    table.append(el("tr", {}, el("th", {class: "key", text: "param"}), el("th", {text: `A: ${sides[0].row.name}`}),
                    el("th", {text: `B: ${sides[1].row.name}`})));
    keys.forEach((k) => table.append(el("tr", {"data-param": k}, el("td", {class: "mono", text: k}), cell(a[k]),
                                        cell(b[k]))));
    return table;
  }

  // ---------------------------------------------------------------- plots (SVG, both experiments overlaid)
  function axes(svg, x0, y0, w, h, xLabel, yLabel) {
    svg.append(svgEl("rect", {x: x0, y: y0, width: w, height: h, class: "plot-frame"}));
    for (let i = 0; i <= 4; i++) {
      const t = i / 4;
      svg.append(svgEl("line", {x1: x0, x2: x0 + w, y1: y0 + h - t * h, y2: y0 + h - t * h, class: "plot-grid"}));
      svg.append(svgEl("text", {x: x0 - 4, y: y0 + h - t * h + 3, class: "plot-tick", "text-anchor": "end"},
                       t.toFixed(2)));
      svg.append(svgEl("text", {x: x0 + t * w, y: y0 + h + 12, class: "plot-tick", "text-anchor": "middle"},
                       t.toFixed(2)));
    }
    svg.append(svgEl("text", {x: x0 + w / 2, y: y0 + h + 26, class: "plot-label", "text-anchor": "middle"}, xLabel));
    svg.append(svgEl("text", {x: 12, y: y0 + h / 2, class: "plot-label", "text-anchor": "middle",
                              transform: `rotate(-90 12 ${y0 + h / 2})`}, yLabel));
  }
  function legend(svg, sides, x, y) {
    sides.forEach((s, i) => {
      svg.append(svgEl("rect", {x, y: y + i * 14 - 8, width: 10, height: 10, fill: SIDE_COLOURS[i]}));
      svg.append(svgEl("text", {x: x + 14, y: y + i * 14, class: "plot-tick"}, `${"AB"[i]}: ${s.row.name}`));
    });
  }
  function prPlot(sides) {
    const w = 300, h = 200, x0 = 44, y0 = 10;
    const svg = svgEl("svg", {viewBox: `0 0 ${x0 + w + 150} ${y0 + h + 34}`, class: "plot", "data-plot": "pr"});
    axes(svg, x0, y0, w, h, "recall", "precision");
    sides.forEach((s, i) => {
      const pts = (s.plots && s.plots.object_pr) || [];
      if (!pts.length) return;
      const path = pts.map((p) => `${(x0 + p.recall * w).toFixed(1)},${(y0 + h - p.precision * h).toFixed(1)}`);
      svg.append(svgEl("polyline", {points: path.join(" "), fill: "none", stroke: SIDE_COLOURS[i],
                                    "stroke-width": 2, "data-side": SIDES[i]}));
    });
    legend(svg, sides, x0 + w + 12, y0 + 14);
    return svg;
  }
  function contextPlot(sides) {
    const groups = [];
    sides.forEach((s) => ((s.plots && s.plots.per_context) || []).forEach((r) => {
      if (!groups.includes(r.group)) groups.push(r.group);
    }));
    const f1 = sides.map((s) => Object.fromEntries(((s.plots && s.plots.per_context) || [])
      .map((r) => [r.group, r.f1])));
    const x0 = 150, w = 220, row = 22, y0 = 6, h = Math.max(1, groups.length) * row;
    const svg = svgEl("svg", {viewBox: `0 0 ${x0 + w + 150} ${y0 + h + 34}`, class: "plot", "data-plot": "context"});
    svg.append(svgEl("rect", {x: x0, y: y0, width: w, height: h, class: "plot-frame"}));
    for (let i = 0; i <= 4; i++) {
      svg.append(svgEl("line", {x1: x0 + i * w / 4, x2: x0 + i * w / 4, y1: y0, y2: y0 + h, class: "plot-grid"}));
      svg.append(svgEl("text", {x: x0 + i * w / 4, y: y0 + h + 12, class: "plot-tick", "text-anchor": "middle"},
                       (i / 4).toFixed(2)));
    }
    svg.append(svgEl("text", {x: x0 + w / 2, y: y0 + h + 26, class: "plot-label", "text-anchor": "middle"},
                     "object F1"));
    groups.forEach((g, j) => {
      const y = y0 + j * row;
      svg.append(svgEl("text", {x: x0 - 6, y: y + row / 2 + 3, class: "plot-tick", "text-anchor": "end"}, g));
      f1.forEach((m, i) => {
        if (m[g] === undefined) return;
        svg.append(svgEl("rect", {x: x0, y: y + 3 + i * 8, width: Math.max(0.5, m[g] * w), height: 7,
                                  fill: SIDE_COLOURS[i], "data-side": SIDES[i], "data-group": g}));
      });
    });
    legend(svg, sides, x0 + w + 12, y0 + 14);
    return svg;
  }

  // ---------------------------------------------------------------- maps
  function boundsOf(feature) { return L.geoJSON(feature).getBounds(); }
  function sideMap(box, side, imagery, scenes) {
    const map = L.map(box, {preferCanvas: true, minZoom: 2, maxZoom: 23, zoomSnap: 0.25});
    const canvas = L.canvas({padding: 0.3});
    scenes.forEach((scene) => imagery(map, scene));
    const layer = L.geoJSON(side.detections.features, {renderer: canvas, style: (f) => ({
      color: OUTCOME[f.properties.outcome].colour, weight: 2, fill: true, fillOpacity: 0.08})});
    layer.eachLayer((l) => {
      const p = l.feature.properties;
      l.bindTooltip(`${OUTCOME[p.outcome].label}<br>${p.scene} · ${p.class}` +
                    (p.score !== null ? ` · score ${p.score}` : "") + (p.area_m2 !== null ? ` · ${p.area_m2} m²` : ""),
                    {sticky: true});
    });
    layer.addTo(map);
    L.control.scale({imperial: false}).addTo(map);
    box.dataset.features = String(side.detections.features.length);
    return {map, layer};
  }
  function sync(maps) {
    let busy = false;
    maps.forEach((m, i) => m.on("move zoom", () => {
      if (busy) return;
      busy = true;
      maps.forEach((o, j) => { if (j !== i) o.setView(m.getCenter(), m.getZoom(), {animate: false}); });
      busy = false;
    }));
  }
  function focus(map, feature, highlight) {
    map.fitBounds(boundsOf(feature).pad(1.5), {maxZoom: 21, animate: false});
    highlight.clearLayers();
    highlight.addData(feature);
  }
  function list(side, outcome, onPick) {
    const items = side.detections.features.filter((f) => f.properties.outcome === outcome);
    items.sort((a, b) => outcome === "fp" ? (b.properties.score ?? 0) - (a.properties.score ?? 0)
                                          : (b.properties.area_m2 ?? 0) - (a.properties.area_m2 ?? 0));
    const ol = el("ol", {class: "cmp-list", "data-list": outcome});
    items.slice(0, LIST_MAX).forEach((f) => {
      const p = f.properties;
      const text = `${p.scene}` + (p.score !== null ? ` · score ${p.score}` : "") +
                   (p.area_m2 !== null ? ` · ${p.area_m2} m²` : "");
      const button = el("button", {type: "button", "data-feature": p.id, text});
      button.addEventListener("click", () => onPick(f));
      ol.append(el("li", {}, button));
    });
    const title = outcome === "fp" ? "False positives" : "Misses";
    const more = items.length > LIST_MAX ? ` (first ${LIST_MAX} of ${items.length})` : "";
    return el("div", {}, el("h4", {text: `${title} · ${items.length}${more}`}), ol);
  }
  function counts(side, key) {
    const c = side.detections.counts, r = side.detections.report;
    const box = el("div", {class: "cmp-counts"});
    for (const o of ["tp", "fp", "fn"]) {
      box.append(el("span", {class: "cmp-count"}, el("i", {class: "swatch", style: `background:${OUTCOME[o].colour}`}),
                    el("b", {"data-count": o, "data-side": key, text: String(c[o])}),
                    el("span", {text: o.toUpperCase()})));
    }
    const same = r && ["tp", "fp", "fn"].every((o) => r[o] === c[o]);
    box.append(el("span", {class: same ? "muted small" : "message small", "data-report-check": same ? "equal" : "differs",
                           text: !r ? "no reports/evaluate.json to check against"
                             : same ? "= reports/evaluate.json"
                             : `reports/evaluate.json says ${r.tp} TP, ${r.fp} FP, ${r.fn} FN`}));
    return box;
  }

  function show(box, sides, diff, imagery) {
    box.replaceChildren();
    const onlyChanged = el("input", {type: "checkbox", id: "diff-changed"});
    const diffBox = el("div", {class: "cmp-diff-box"}, diffTable(diff, sides, false));
    onlyChanged.addEventListener("change", () => diffBox.replaceChildren(diffTable(diff, sides, onlyChanged.checked)));
    box.append(el("section", {class: "cmp-section"},
      el("h2", {}, "Params that differ ", el("small", {text: "B against A"})), paramsTable(sides)));
    box.append(el("section", {class: "cmp-section"},
      el("h2", {}, "Metric difference ", el("small", {text: "as dvc metrics diff A B"})),
      el("label", {class: "small"}, onlyChanged, el("span", {text: "changed only"})), diffBox));

    const scenes = [...new Set(sides.flatMap((s) => (s.detections ? Object.keys(s.detections.scenes) : [])))].sort();
    const row = el("div", {class: "cmp-sides"});
    box.append(el("section", {class: "cmp-section"},
      el("h2", {}, "Detections ", el("small", {text: "test scenes · IoU rule of evaluate"})),
      el("div", {class: "cmp-legend"}, ...Object.values(OUTCOME).map((o) => el("span", {},
        el("i", {class: "swatch", style: `background:${o.colour}`}), el("span", {text: o.label})))), row));
    const maps = [];
    sides.forEach((side, i) => {
      const key = SIDES[i];
      const pane = el("div", {class: "cmp-side", "data-side": key});
      pane.append(el("h3", {}, el("span", {class: "swatch", style: `background:${SIDE_COLOURS[i]}`}),
                     el("span", {text: `${"AB"[i]}: ${side.row.name}`}),
                     el("small", {class: "mono", text: ` ${side.row.rev}`})));
      row.append(pane);
      if (side.error || !side.detections) {
        pane.append(el("p", {class: "error", "data-error": key, text: side.error}));
        return;
      }
      pane.append(counts(side, key));
      if (side.detections.labels === "workspace") {
        pane.append(el("p", {class: "muted small", text: "labels: the workspace's data/raw (not versioned here)"}));
      }
      const mapBox = el("div", {class: "cmp-map", id: `map-${key}`, "data-map": key});
      pane.append(mapBox);
      const {map} = sideMap(mapBox, side, imagery, Object.keys(side.detections.scenes));
      maps.push(map);
      const highlight = L.geoJSON(null, {style: () => ({color: "#ffffff", weight: 3, fill: false, dashArray: "4 3"})})
        .addTo(map);
      const pick = (f) => focus(map, f, highlight);
      pane.append(el("div", {class: "cmp-lists"}, list(side, "fp", pick), list(side, "fn", pick)));
    });
    sync(maps);
    if (maps.length) {
      const select = el("select", {id: "zoom-scene"}, ...scenes.map((s) => el("option", {value: s, text: s})),
                        el("option", {value: "", text: "all detections"}));
      const frame = () => {
        const b = L.latLngBounds([]);
        sides.forEach((s) => s.detections && s.detections.features
          .filter((f) => !select.value || f.properties.scene === select.value).forEach((f) => b.extend(boundsOf(f))));
        if (b.isValid()) maps[0].fitBounds(b, {padding: [10, 10], animate: false});
        else maps[0].setView([0, 0], 2);
      };
      select.addEventListener("change", frame);
      frame();  // the first scene: sites lie far apart
      row.before(el("label", {class: "small"}, el("span", {text: "Zoom to scene"}), select));
    }
    box.append(el("section", {class: "cmp-section cmp-plots"},
      el("h2", {}, "Plots ", el("small", {text: "plots/evaluate of each experiment"})),
      el("figure", {}, el("figcaption", {text: "Object precision-recall (score threshold)"}), prPlot(sides)),
      el("figure", {}, el("figcaption", {text: "Object F1 by size, GSD and block context"}), contextPlot(sides))));
    box.dataset.shown = sides.map((s) => s.row.id).join(",");
    return maps;
  }

  // ---------------------------------------------------------------- a saved report: everything inline
  function imageOverlays(imagery) {
    return (map, scene) => {
      const pic = imagery[scene];
      if (!pic) return;
      const [w, s, e, n] = pic.bounds;
      L.imageOverlay(pic.png, [[s, w], [n, e]], {className: "imagery"}).addTo(map);
    };
  }
  window.GeofoundryCompareView = {show, imageOverlays};
  const data = document.getElementById("report-data");
  if (data) {
    const report = JSON.parse(data.textContent);
    show(document.getElementById("comparison"), report.sides, report.diff, imageOverlays(report.imagery));
  }
})();
