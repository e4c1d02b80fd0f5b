/* The data page's facet controls: class tree, site and sensor checks, context ranges with their histograms,
   GSD, dates and valid share. They edit the page's query state and call back when it changed. */
(function () {
  "use strict";
  const {$, el} = window.GeofoundryDom;
  const CONTEXT_NAMES = {vegetation: "vegetation", bright: "bright / snow", cloud_haze: "cloud / haze",
                         water: "water", nodata: "no data"};

  /* facets: the catalog's (/api/data/catalog); state: the query's; changed(): called after an edit;
     selection(): the last counts, whose histograms are drawn over the catalog's. */
  function dataFacets(facets, state, changed, selection) {
    function classTree() {
      const box = $("classes");
      box.replaceChildren();
      for (const c of facets.classes) {
        const depth = c.path.split("/").length - 1;
        const input = el("input", {type: "checkbox", value: c.path, "data-class": c.path});
        input.checked = state.classes.includes(c.path);
        input.addEventListener("change", () => {
          state.classes = input.checked ? [...state.classes, c.path] : state.classes.filter((p) => p !== c.path);
          classTree();
          changed();
        });
        const order = state.classes.indexOf(c.path);
        box.append(el("label", {class: "tree-item", style: `padding-left:${depth * 14}px`}, input,
                      el("span", {text: c.path.split("/").pop(), title: c.path}),
                      el("span", {class: "order", text: order >= 0 ? `class ${order + 1}` : ""}),
                      el("span", {class: "count", "data-level": c.path, text: c.objects.toLocaleString()})));
      }
    }
    function checks(boxId, values, set) {
      const box = $(boxId);
      box.replaceChildren();
      for (const [name, n] of Object.entries(values)) {
        const input = el("input", {type: "checkbox", value: name});
        input.checked = set.has(name);
        input.addEventListener("change", () => { input.checked ? set.add(name) : set.delete(name); changed(); });
        box.append(el("label", {}, input, el("span", {text: name}), el("span", {class: "count", text: `${n} sc.`})));
      }
    }
    function histogram(name) {
      const bins = facets.bins, all = facets.contexts[name].histogram;
      const counts = selection(), sel = counts && counts.ok ? counts.histograms[name] || [] : [];
      const top = Math.max(1, ...all), w = 200, h = 34, bw = w / bins;
      const range = state.contexts[name];
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
      svg.setAttribute("class", "hist");
      const bar = (i, v, cls) => {
        const r = document.createElementNS(svg.namespaceURI, "rect");
        const bh = v ? Math.max(1, (h - 2) * Math.sqrt(v / top)) : 0;
        Object.entries({x: i * bw + 0.5, y: h - bh, width: bw - 1, height: bh, class: cls})
          .forEach(([k, v2]) => r.setAttribute(k, v2));
        svg.append(r);
      };
      all.forEach((v, i) => {
        const mid = (i + 0.5) / bins;
        bar(i, v, range && (mid < range[0] || mid > range[1]) ? "out" : "all");
      });
      sel.forEach((v, i) => bar(i, v, "sel"));
      return svg;
    }
    function contextFacets() {
      const box = $("contexts");
      box.replaceChildren();
      for (const name of Object.keys(facets.contexts)) {
        const known = facets.contexts[name].known, range = state.contexts[name];
        const on = el("input", {type: "checkbox", "data-context": name});
        on.checked = !!range;
        on.disabled = !known;
        const lo = el("input", {type: "number", min: 0, max: 1, step: 0.05, value: range ? range[0] : 0,
                                "data-context-min": name});
        const hi = el("input", {type: "number", min: 0, max: 1, step: 0.05, value: range ? range[1] : 1,
                                "data-context-max": name});
        lo.disabled = hi.disabled = !range;
        const update = () => {
          if (on.checked) state.contexts[name] = [parseFloat(lo.value), parseFloat(hi.value)];
          else delete state.contexts[name];
          lo.disabled = hi.disabled = !on.checked;
          if (known) box.querySelector(`[data-hist="${name}"]`).replaceChildren(histogram(name));
          changed();
        };
        [on, lo, hi].forEach((i) => i.addEventListener("change", update));
        box.append(el("div", {class: "context"},
          el("label", {class: "context-name"}, on, el("span", {text: CONTEXT_NAMES[name] || name})),
          known ? el("span", {class: "range"}, lo, el("span", {text: "–"}), hi)
                : el("span", {class: "small muted", text: "not computed for these bands"}),
          el("div", {"data-hist": name}, known ? histogram(name) : "")));
      }
    }
    function scalarFacets() {
      const [g0, g1] = state.gsd_range;
      $("gsd-min").value = g0;
      $("gsd-max").value = g1 >= 1e8 ? "" : g1;
      $("gsd-min").placeholder = facets.gsd[0];
      $("gsd-max").placeholder = facets.gsd[1];
      $("date-first").value = state.dates[0] || "";
      $("date-last").value = state.dates[1] || "";
      $("min-valid").value = state.min_valid_frac;
      const gsd = () => {
        state.gsd_range = [parseFloat($("gsd-min").value || "0"), $("gsd-max").value === "" ? 1e9
                           : parseFloat($("gsd-max").value)];
        changed();
      };
      $("gsd-min").addEventListener("change", gsd);
      $("gsd-max").addEventListener("change", gsd);
      const dates = () => {
        const a = $("date-first").value, b = $("date-last").value;
        state.dates = a || b ? [a || "1900-01-01", b || "2100-12-31"] : [];
        changed();
      };
      $("date-first").addEventListener("change", dates);
      $("date-last").addEventListener("change", dates);
      $("min-valid").addEventListener("change", () => {
        state.min_valid_frac = parseFloat($("min-valid").value || "0");
        changed();
      });
    }
    return {classTree, checks, contextFacets, scalarFacets};
  }
  window.GeofoundryDataFacets = {CONTEXT_NAMES, dataFacets};
})();
