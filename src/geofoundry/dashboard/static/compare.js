/* The compare page: the experiments table (DVC's rows: sort, filter, pick A and B), their comparison
   (compare_view.js), "save as report", and promotion to a model version. Talks to this server only. */
(function () {
  "use strict";
  const {$, el} = window.GeofoundryDom;
  const TOKEN = document.querySelector('meta[name="geofoundry-token"]').content;
  const FIXED = [["name", "experiment"], ["rev", "rev"], ["kind", "kind"], ["created", "created"], ["state", "state"]];
  const OPS = [">=", "<=", "!=", "=", ">", "<"];
  let rows = [], picked = {a: null, b: null}, sort = {key: null, dir: 1}, maps = [];

  async function getJson(url, options) {
    const res = await fetch(url, options);
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }
  const post = (url, body) => getJson(url, {method: "POST", body: JSON.stringify(body),
    headers: {"content-type": "application/json", "x-geofoundry-token": TOKEN}});

  // ---------------------------------------------------------------- columns
  function short(ids) {
    /* file:key → key, unless two files share the key (then file:key), as dvc exp show names them */
    const count = {};
    ids.forEach((id) => { const k = id.slice(id.indexOf(":") + 1); count[k] = (count[k] || 0) + 1; });
    return Object.fromEntries(ids.map((id) => {
      const k = id.slice(id.indexOf(":") + 1);
      return [id, count[k] > 1 || !k ? id : k];
    }));
  }
  function columns() {
    const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
    let params = [...new Set(rows.flatMap((r) => Object.keys(r.params)))];
    if (!$("all-params").checked) {
      params = params.filter((p) => new Set(rows.map((r) => JSON.stringify(r.params[p] ?? null))).size > 1);
    }
    return {metrics, params, names: short([...metrics, ...params])};
  }
  function value(row, key) {
    if (key.startsWith("m:")) return row.metrics[key.slice(2)];
    if (key.startsWith("p:")) return row.params[key.slice(2)];
    return key === "name" ? row.name : row[key];
  }

  // ---------------------------------------------------------------- filter
  function term(text) {
    for (const op of OPS) {
      const i = text.indexOf(op);
      if (i > 0) return {key: text.slice(0, i), op, value: text.slice(i + op.length)};
    }
    return {text: text.toLowerCase()};
  }
  function test(row, t) {
    if (t.text !== undefined) {
      return [row.name, row.rev, row.kind, row.baseline, ...row.tags].some((v) => v && v.toLowerCase().includes(t.text));
    }
    const all = {...row.metrics, ...row.params};
    const keys = Object.keys(all).filter((k) => k === t.key || k.endsWith(":" + t.key) || k.endsWith("." + t.key));
    if (!keys.length) return false;
    return keys.some((k) => {
      const v = all[k], num = parseFloat(t.value), isNum = typeof v === "number" && !Number.isNaN(num);
      const a = isNum ? v : String(v), b = isNum ? num : t.value;
      return {">=": a >= b, "<=": a <= b, "!=": a !== b, "=": a === b, ">": a > b, "<": a < b}[t.op];
    });
  }
  function visible() {
    const terms = $("filter").value.trim().split(/\s+/).filter(Boolean).map(term);
    const out = rows.filter((r) => terms.every((t) => test(r, t)));
    if (sort.key) {
      out.sort((x, y) => {
        const a = value(x, sort.key), b = value(y, sort.key);
        if (a === b) return 0;
        if (a === undefined || a === null) return 1;
        if (b === undefined || b === null) return -1;
        return (a > b ? 1 : -1) * sort.dir;
      });
    }
    return out;
  }

  // ---------------------------------------------------------------- table
  const CELL_CHARS = 40;  // longer values (a reason, a list of steps) are cut, whole in the cell's tooltip
  const shown = (v) => v === undefined || v === null ? "–" : typeof v === "number" && !Number.isInteger(v)
    ? String(Math.round(v * 1e5) / 1e5) : String(v);
  function render() {
    const {metrics, params, names} = columns();
    const table = $("experiments");
    table.replaceChildren();
    const groups = el("tr", {class: "groups"}, el("th", {colspan: 2 + FIXED.length, text: ""}));
    if (metrics.length) groups.append(el("th", {colspan: metrics.length, class: "group", text: "metrics"}));
    if (params.length) groups.append(el("th", {colspan: params.length, class: "group", text: "params"}));
    const head = el("tr", {}, el("th", {text: "A"}), el("th", {text: "B"}));
    const keys = [...FIXED, ...metrics.map((m) => [`m:${m}`, names[m]]), ...params.map((p) => [`p:${p}`, names[p]])];
    for (const [key, label] of keys) {
      const arrow = sort.key === key ? (sort.dir > 0 ? " ▲" : " ▼") : "";
      const th = el("th", {"data-sort": key, title: key.replace(/^[mp]:/, ""), text: label + arrow});
      th.addEventListener("click", () => {
        sort = {key, dir: sort.key === key ? -sort.dir : (key.startsWith("m:") ? -1 : 1)};
        render();
      });
      head.append(th);
    }
    table.append(groups, head);
    const list = visible();
    for (const row of list) {
      const tr = el("tr", {"data-row": row.id, class: row.kind});
      for (const side of ["a", "b"]) {
        const radio = el("input", {type: "radio", name: `pick-${side}`, value: row.id, "data-pick": side});
        radio.checked = picked[side] === row.id;
        radio.addEventListener("change", () => { picked[side] = row.id; updateLinks(); });
        tr.append(el("td", {}, radio));
      }
      for (const [key] of keys) {
        const text = key === "name" && row.tags.length ? `${shown(value(row, key))} [${row.tags.join(", ")}]`
          : shown(value(row, key));
        const long = text.length > CELL_CHARS && key !== "name";
        const td = el("td", {"data-col": key, text: long ? text.slice(0, CELL_CHARS - 1) + "…" : text,
                             title: long ? text : key === "name" ? row.error : null});
        tr.append(td);
      }
      table.append(tr);
    }
    $("row-count").textContent = `${list.length} of ${rows.length} rows`;
  }
  function updateLinks() {
    const ok = picked.a && picked.b;
    $("compare").disabled = !ok;
    $("save-report").setAttribute("href", ok ? `/api/compare/report?a=${encodeURIComponent(picked.a)}&b=` +
                                               encodeURIComponent(picked.b) : "#");
  }

  // ---------------------------------------------------------------- comparison
  const tileInfo = new Map();
  function tiles(map, scene) {
    if (!tileInfo.has(scene)) {
      tileInfo.set(scene, fetch(`/api/tiles/scene/${encodeURIComponent(scene)}`).then((r) => (r.ok ? r.json() : null)));
    }
    tileInfo.get(scene).then((info) => {
      if (!info) return;
      const [w, s, e, n] = info.bounds;
      L.tileLayer(`/tiles/scene/${encodeURIComponent(scene)}/{z}/{x}/{y}.png`, {
        bounds: L.latLngBounds([s, w], [n, e]), minZoom: Math.max(0, info.minzoom - 2), maxNativeZoom: info.maxzoom,
        maxZoom: 23, className: "imagery"}).addTo(map);
    });
  }
  async function compare() {
    const {a, b} = picked;
    $("status").textContent = "reading both experiments' detections…";
    document.body.dataset.state = "busy";
    try {
      const [sa, sb, diff] = await Promise.all([getJson(`/api/compare/side/${encodeURIComponent(a)}`),
        getJson(`/api/compare/side/${encodeURIComponent(b)}`),
        getJson(`/api/compare/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`)]);
      maps.forEach((m) => m.remove());
      maps = window.GeofoundryCompareView.show($("comparison"), [sa, sb], diff.diff, tiles);
      window.geofoundryMaps = maps;  // for scripts and tests: the two maps
      $("status").textContent = `${sa.row.name} and ${sb.row.name}`;
    } catch (err) {
      $("comparison").replaceChildren(el("p", {class: "error", text: err.message}));
      $("status").textContent = "failed";
    } finally {
      document.body.dataset.state = "idle";
    }
  }

  // ---------------------------------------------------------------- promote
  function planView(plan, done) {
    const box = $("promote-plan");
    box.replaceChildren();
    if (plan.commands.length) {
      box.append(el("p", {text: done ? "Ran:" : "The commands (the dashboard uploads this version's bundle first, " +
                                             "then tags, so a failed upload leaves no tag):"}),
                 el("pre", {class: "mono small", "data-commands": "", text: plan.commands.join("\n")}));
    }
    if (plan.problems.length) {
      box.append(el("p", {class: "error", text: "Refused:"}),
                 el("ul", {class: "error", "data-problems": ""}, ...plan.problems.map((p) => el("li", {text: p}))));
    } else if (done) {
      box.append(el("p", {"data-registered": plan.registered, text: `Registered ${plan.registered}.`}));
    } else {
      const go = el("button", {type: "button", class: "action", id: "promote-confirm", text: `Register ${plan.tag}`});
      go.addEventListener("click", () => promote(true));
      box.append(go);
    }
  }
  async function promote(run) {
    const body = {rev: $("promote-rev").value, version: $("promote-version").value.trim()};
    $("promote-plan").replaceChildren(el("p", {text: run ? "registering…" : "checking…"}));
    try {
      const plan = await post(run ? "/api/compare/promote" : "/api/compare/promote/check", body);
      if (run) await loadTable();  // the new version's tag in its row
      planView(plan, run);
    } catch (err) {
      $("promote-plan").replaceChildren(el("p", {class: "error", "data-problems": "", text: err.message}));
    }
  }

  // ---------------------------------------------------------------- start
  async function loadTable() {
    const t0 = performance.now();
    const data = await getJson("/api/compare/experiments");
    rows = data.rows;
    const ids = rows.map((r) => r.id);
    if (!ids.includes(picked.a)) picked.a = ids[1] || ids[0] || null;
    if (!ids.includes(picked.b)) picked.b = ids.find((id, i) => rows[i].kind === "experiment" && id !== picked.a)
                                           || ids[0] || null;
    render();
    updateLinks();
    const select = $("promote-rev"), keep = select.value;
    select.replaceChildren(...rows.filter((r) => r.kind !== "workspace")
      .map((r) => el("option", {value: r.id, text: `${r.name} (${r.rev})`})));
    select.value = ids.includes(keep) ? keep : picked.b || "";
    $("status").textContent = `${rows.length} rows · ${Math.round(performance.now() - t0)} ms`;
  }
  async function start() {
    $("filter").addEventListener("input", render);
    $("all-params").addEventListener("change", render);
    $("compare").addEventListener("click", compare);
    $("promote-check").addEventListener("click", () => promote(false));
    await loadTable();
    document.body.dataset.readyMs = String(Math.round(performance.now()));  // since navigation started
    document.body.dataset.table = "ready";
  }
  start().catch((err) => {
    $("status").textContent = "failed";
    const m = $("table-message");
    m.hidden = false;
    m.textContent = err.message;
  });
})();
