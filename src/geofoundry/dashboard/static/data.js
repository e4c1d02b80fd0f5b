/* The data page: facets → a select: query → live counts from the server (the select stage's own query code), the
   selection on the map over the imagery, and "use this selection". Talks to this server only. */
(function () {
  "use strict";
  const SPLIT_COLOURS = {train: "#3b82f6", val: "#f59e0b", test: "#e11d48"};
  const RAMP = ["#0d0887", "#5b02a3", "#9a179b", "#cb4678", "#eb7852", "#fbb32f", "#f0f921"];
  const TOKEN = document.querySelector('meta[name="geofoundry-token"]').content;
  const {$, el} = window.GeofoundryDom;
  const {CONTEXT_NAMES, dataFacets} = window.GeofoundryDataFacets;

  let facets = null, controls = null;
  const state = {classes: [], sites: new Set(), sensors: new Set(), gsd_range: [0, 1e9], dates: [], contexts: {},
                 geofence: {include: null, exclude: null}, min_valid_frac: 0};
  let lastCounts = null, lastBlocks = null, seq = 0;

  // ---------------------------------------------------------------- the query
  function query() {
    return {
      classes: state.classes.slice(), sites: [...state.sites].sort(), sensors: [...state.sensors].sort(),
      gsd_range: state.gsd_range.slice(), dates: state.dates.slice(),
      contexts: Object.fromEntries(Object.entries(state.contexts)),
      geofence: {include: state.geofence.include, exclude: state.geofence.exclude},
      min_valid_frac: state.min_valid_frac,
    };
  }
  async function post(path, body, raw) {
    const headers = {"x-geofoundry-token": TOKEN, ...(raw ? {} : {"content-type": "application/json"})};
    const res = await fetch(path, {method: "POST", body: raw ? body : JSON.stringify({select: body}), headers});
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }
  let timer = null;
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 120);
  }
  async function refresh() {
    const id = ++seq, q = query(), t0 = performance.now();
    document.body.dataset.state = "busy";
    $("status").textContent = "counting…";
    try {
      const counts = await post("/api/data/query", q);
      if (id !== seq) return;
      lastCounts = counts;
      if (!counts.ok) window.geofoundryShown = JSON.stringify(q);
      const ms = Math.round(performance.now() - t0);
      renderCounts(counts);
      $("status").textContent = counts.ok ? `${counts.totals.blocks} blocks · ${ms} ms` : "empty selection";
      const [blocks, params] = await Promise.all([post("/api/data/blocks", q), post("/api/data/params", q)]);
      if (id !== seq) return;
      lastBlocks = blocks;
      drawBlocks();
      $("yaml").textContent = params.select_yaml;
      window.geofoundryShown = JSON.stringify(q);  // the query whose counts, blocks and yaml are on screen
    } catch (err) {
      if (id !== seq) return;
      window.geofoundryShown = JSON.stringify(q);
      showMessage(err.message, true);
      $("status").textContent = "invalid query";
    } finally {
      if (id === seq) document.body.dataset.state = "idle";
    }
  }

  // ---------------------------------------------------------------- counts
  function showMessage(text, isError) {
    const m = $("message");
    m.hidden = !text;
    m.textContent = text || "";
    m.classList.toggle("error", !!isError);
  }
  function renderCounts(c) {
    const table = $("split-table"), totals = $("totals");
    table.replaceChildren();
    totals.replaceChildren();
    if (!c.ok) {
      showMessage(c.message, false);
      lastBlocks = null;
      drawBlocks();
      controls.contextFacets();
      return;
    }
    showMessage("");
    const t = c.totals;
    for (const [key, label] of [["blocks", "blocks"], ["valid_km2", "km² valid"], ["objects", "objects"],
                                ["scenes", "scenes"]]) {
      totals.append(el("div", {class: "total"}, el("b", {"data-total": key, text: t[key].toLocaleString()}),
                       el("span", {text: label})));
    }
    const splits = Object.keys(c.metrics.split);
    const head = el("tr", {}, el("th", {text: ""}));
    splits.forEach((s) => head.append(el("th", {},
      el("span", {class: "swatch", style: `background:${SPLIT_COLOURS[s]}`}), el("span", {text: s}))));
    table.append(head);
    const rows = [["blocks", "blocks"], ["scenes", "scenes"], ["valid_km2", "km² valid"], ["objects", "objects"],
                  ["positive_blocks", "blocks with objects"], ["area_share", "area share"]];
    for (const [key, label] of rows) {
      const tr = el("tr", {}, el("th", {text: label}));
      splits.forEach((s) => tr.append(el("td", {"data-split": s, "data-key": key,
                                                text: String(c.metrics.split[s][key])})));
      table.append(tr);
    }
    const names = Object.keys(c.metrics.split[splits[0]].classes);
    for (const name of names) {
      const tr = el("tr", {class: "class-row"}, el("th", {text: `· ${name}`}));
      splits.forEach((s) => tr.append(el("td", {"data-split": s, "data-class-count": name,
                                                text: String(c.metrics.split[s].classes[name])})));
      table.append(tr);
    }
    const levels = $("levels");
    levels.replaceChildren(el("tr", {}, el("th", {text: "class path"}), el("th", {text: "catalog"}),
                                     el("th", {text: "selected"})));
    for (const f of facets.classes) {
      levels.append(el("tr", {}, el("td", {text: f.path, class: "mono"}), el("td", {text: f.objects}),
                       el("td", {"data-selected-level": f.path, text: c.levels[f.path] ?? 0})));
    }
    controls.contextFacets();
    styleFootprints();
  }

  // ---------------------------------------------------------------- map
  const map = L.map("map", {preferCanvas: true, zoomControl: true, minZoom: 2, maxZoom: 23});
  const canvas = L.canvas({padding: 0.3});
  const blockLayer = L.layerGroup().addTo(map);
  const footprintLayer = L.geoJSON(null, {style: () => ({color: "#e5e7eb", weight: 1.5, fill: false, dashArray: "4 3"})});
  const imageryLayer = L.layerGroup().addTo(map);
  const labelLayer = L.layerGroup().addTo(map);
  const fenceLayer = L.featureGroup().addTo(map);
  const overlays = {"imagery": imageryLayer, "scene footprints": footprintLayer, "grid blocks": blockLayer,
                    "labels (zoom ≥ 17)": labelLayer, "geofence": fenceLayer};
  const imagery = new Map(), labels = new Map();

  function colourBy() { return $("colour-by").value; }
  function ramp(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "#6b7280";
    const x = Math.max(0, Math.min(0.999, v)) * (RAMP.length - 1), i = Math.floor(x);
    return RAMP[i + (x - i > 0.5 ? 1 : 0)];
  }
  function drawBlocks() {
    blockLayer.clearLayers();
    const legend = $("legend");
    legend.replaceChildren();
    if (!lastBlocks || !lastBlocks.ok) return;
    const b = lastBlocks, size = facets.block_size_m, by = colourBy();
    const maxObjects = Math.max(1, ...b.n_objects);
    const colourOf = by === "split" ? (i) => SPLIT_COLOURS[b.splits[b.split[i]]]
      : by === "objects" ? (i) => ramp(Math.log1p(b.n_objects[i]) / Math.log1p(maxObjects))
      : (i) => ramp(b.contexts[by] ? b.contexts[by][i] : null);
    const proj = L.CRS.EPSG3857;
    for (let i = 0; i < b.ix.length; i++) {
      const colour = colourOf(i);
      const style = {renderer: canvas, color: colour, weight: 1, fillColor: colour, fillOpacity: 0.16,
                     interactive: false};
      if (b.clipped[i]) {  // cut by the geofence: its clipped outline
        L.geoJSON(b.clipped[i], {style: () => style, renderer: canvas, interactive: false}).addTo(blockLayer);
        continue;
      }
      const sw = proj.unproject(L.point(b.ix[i] * size, b.iy[i] * size));
      const ne = proj.unproject(L.point((b.ix[i] + 1) * size, (b.iy[i] + 1) * size));
      L.rectangle([sw, ne], style).addTo(blockLayer);
    }
    if (by === "split") {
      b.splits.forEach((s) => legend.append(el("span", {class: "swatch", style: `background:${SPLIT_COLOURS[s]}`}),
                                             el("span", {text: s})));
    } else {
      legend.append(el("span", {text: by === "objects" ? "0" : "0"}),
                    el("span", {class: "ramp", style: `background:linear-gradient(90deg,${RAMP.join(",")})`}),
                    el("span", {text: by === "objects" ? String(maxObjects) + " objects" : "1"}));
    }
  }
  function styleFootprints() {
    const splits = lastCounts && lastCounts.ok ? lastCounts.scene_splits : {};
    footprintLayer.setStyle((f) => ({color: splits[f.properties.scene_id] ? "#f8fafc" : "#64748b", weight: 1.5,
                                     fill: false, dashArray: splits[f.properties.scene_id] ? null : "4 3"}));
  }
  function inView(bounds) { return map.getBounds().intersects(bounds); }
  async function updateImagery() {
    for (const f of facets.scenes.features) {
      const id = f.properties.scene_id, bounds = L.geoJSON(f).getBounds();
      if (imagery.has(id) || !inView(bounds)) continue;
      imagery.set(id, null);
      const res = await fetch(`/api/tiles/scene/${encodeURIComponent(id)}`);
      if (!res.ok) continue;
      const info = await res.json();
      const [w, s, e, n] = info.bounds;
      const layer = L.tileLayer(`/tiles/scene/${encodeURIComponent(id)}/{z}/{x}/{y}.png`, {
        bounds: L.latLngBounds([s, w], [n, e]), minZoom: Math.max(0, info.minzoom - 2), maxNativeZoom: info.maxzoom,
        maxZoom: 23, zIndex: Math.round(100 - f.properties.gsd_m * 100), className: "imagery"});
      imagery.set(id, layer);
      layer.addTo(imageryLayer);
    }
  }
  async function updateLabels() {
    if (!map.hasLayer(labelLayer) || map.getZoom() < 17) { labelLayer.clearLayers(); labels.clear(); return; }
    const sites = new Set();
    const scenes = facets.scenes.features.slice().sort((a, b) => a.properties.gsd_m - b.properties.gsd_m);
    for (const f of scenes) {
      const id = f.properties.scene_id;
      if (sites.has(f.properties.site) || !inView(L.geoJSON(f).getBounds())) continue;
      sites.add(f.properties.site);  // the scenes of a site share their labels: draw them once
      if (labels.has(id)) continue;
      labels.set(id, null);
      const res = await fetch(`/api/data/labels/${encodeURIComponent(id)}`);
      if (!res.ok) continue;
      const layer = L.geoJSON(await res.json(), {renderer: canvas, interactive: false,
        style: () => ({color: "#facc15", weight: 1.2, fill: false})});
      labels.set(id, layer);
      layer.addTo(labelLayer);
    }
  }

  // ---------------------------------------------------------------- geofence
  function ringWkt(latlngs) {
    const pts = latlngs.map((p) => `${p.lng.toFixed(7)} ${p.lat.toFixed(7)}`);
    return `(${[...pts, pts[0]].join(", ")})`;
  }
  const drawn = {include: [], exclude: []};
  function fenceFromDrawn(kind) {
    const polys = drawn[kind].map((layer) => `(${ringWkt(layer.getLatLngs()[0])})`);
    state.geofence[kind] = polys.length === 0 ? null
      : polys.length === 1 ? `POLYGON ${polys[0]}` : `MULTIPOLYGON (${polys.join(", ")})`;
  }
  function showFence() {
    const g = state.geofence, parts = [];
    if (g.include) parts.push(`include: ${g.include.slice(0, 90)}${g.include.length > 90 ? "…" : ""}`);
    if (g.exclude) parts.push(`exclude: ${g.exclude.slice(0, 90)}${g.exclude.length > 90 ? "…" : ""}`);
    $("fence-text").textContent = parts.join("\n");
  }
  let drawKind = null;
  function startDraw(kind) {
    drawKind = kind;
    new L.Draw.Polygon(map, {shapeOptions: {color: kind === "include" ? "#22c55e" : "#ef4444", weight: 2},
                             allowIntersection: false, showArea: false}).enable();
  }
  map.on(L.Draw.Event.CREATED, (e) => {
    if (!drawKind) return;
    e.layer.setStyle({color: drawKind === "include" ? "#22c55e" : "#ef4444", weight: 2, fillOpacity: 0.06});
    fenceLayer.addLayer(e.layer);
    drawn[drawKind].push(e.layer);
    fenceFromDrawn(drawKind);
    drawKind = null;
    showFence();
    changed();
  });
  async function upload(kind, input) {
    const file = input.files[0];
    if (!file) return;
    try {
      const res = await post(`/api/data/fence?name=${encodeURIComponent(file.name)}`, await file.arrayBuffer(), true);
      drawn[kind].forEach((l) => fenceLayer.removeLayer(l));
      const layer = L.geoJSON(res.geojson, {style: () => ({color: kind === "include" ? "#22c55e" : "#ef4444",
                                                           weight: 2, fillOpacity: 0.06})});
      fenceLayer.addLayer(layer);
      drawn[kind] = [];
      state.geofence[kind] = res.wkt;
      showFence();
      changed();
    } catch (err) {
      showMessage(err.message, true);
    } finally {
      input.value = "";
    }
  }

  // ---------------------------------------------------------------- use this selection
  async function use() {
    const box = $("use-result");
    box.hidden = false;
    box.replaceChildren(el("p", {text: "writing…"}));
    try {
      const res = await post("/api/data/use", query());
      box.replaceChildren(el("p", {"data-written": res.written, text: `Written to ${res.written} (select: only).`}),
                          el("p", {text: "Then run:"}), el("pre", {class: "mono small", text: res.next.join("\n")}));
      $("yaml").textContent = res.select_yaml;
    } catch (err) {
      box.replaceChildren(el("p", {class: "error", text: err.message}));
    }
  }

  // ---------------------------------------------------------------- start
  async function start() {
    facets = await (await fetch("/api/data/catalog")).json();
    const s = facets.select;
    state.classes = s.classes.slice();
    state.sites = new Set(s.sites);
    state.sensors = new Set(s.sensors);
    state.gsd_range = s.gsd_range.slice();
    state.dates = s.dates.slice();
    state.contexts = Object.fromEntries(Object.entries(s.contexts).map(([k, v]) => [k, v.slice()]));
    state.geofence = {include: s.geofence.include, exclude: s.geofence.exclude};
    state.min_valid_frac = s.min_valid_frac;
    for (const [value, label] of [["split", "split"], ["objects", "objects"],
                                  ...Object.keys(facets.contexts).filter((k) => facets.contexts[k].known)
                                    .map((k) => [k, CONTEXT_NAMES[k] || k])]) {
      $("colour-by").append(el("option", {value, text: label}));
    }
    $("colour-by").addEventListener("change", drawBlocks);
    controls = dataFacets(facets, state, changed, () => lastCounts);
    controls.classTree();
    controls.checks("sites", facets.sites, state.sites);
    controls.checks("sensors", facets.sensors, state.sensors);
    controls.scalarFacets();
    controls.contextFacets();
    showFence();
    footprintLayer.addData(facets.scenes);
    footprintLayer.eachLayer((l) => {
      const p = l.feature.properties;
      l.bindTooltip(`${p.scene_id}<br>${p.sensor}, ${p.gsd_m} m, ${p.acquired || "no date"}<br>` +
                    `${p.objects} objects, valid ${(p.valid_frac * 100).toFixed(0)} %`, {sticky: true});
    });
    footprintLayer.addTo(map);
    const info = await (await fetch("/api/tiles/basemap")).json();
    if (info.configured) {
      const base = L.tileLayer("/tiles/basemap/{z}/{x}/{y}.png", {maxNativeZoom: info.maxzoom, maxZoom: 23,
                                                                 minZoom: 0, zIndex: 1});
      base.addTo(map);
      L.control.layers({}, {basemap: base, ...overlays}, {collapsed: false}).addTo(map);
    } else {
      L.control.layers({}, overlays, {collapsed: false}).addTo(map);
    }
    L.control.scale({imperial: false}).addTo(map);
    map.fitBounds(footprintLayer.getBounds(), {padding: [20, 20]});
    for (const site of Object.keys(facets.sites)) $("zoom-to").append(el("option", {value: site, text: site}));
    $("zoom-to").addEventListener("change", () => {
      const site = $("zoom-to").value;
      const group = L.featureGroup();
      footprintLayer.eachLayer((l) => { if (!site || l.feature.properties.site === site) group.addLayer(l); });
      map.fitBounds(group.getBounds(), {padding: [20, 20]});
    });
    map.on("moveend", () => { updateImagery(); updateLabels(); });
    map.on("overlayadd", updateLabels);
    updateImagery();
    $("draw-include").addEventListener("click", () => startDraw("include"));
    $("draw-exclude").addEventListener("click", () => startDraw("exclude"));
    $("upload-include").addEventListener("change", (e) => upload("include", e.target));
    $("upload-exclude").addEventListener("change", (e) => upload("exclude", e.target));
    $("clear-fence").addEventListener("click", () => {
      fenceLayer.clearLayers();
      drawn.include = [];
      drawn.exclude = [];
      state.geofence = {include: null, exclude: null};
      showFence();
      changed();
    });
    $("use").addEventListener("click", use);
    window.geofoundryQuery = query;  // for scripts and tests: the query the page shows
    await refresh();
  }
  start().catch((err) => { $("status").textContent = `failed: ${err.message}`; });
})();
