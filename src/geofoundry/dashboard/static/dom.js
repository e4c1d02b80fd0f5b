/* DOM helpers shared by the pages and the saved comparison report: window.GeofoundryDom.{$, el}. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  /* An element with attributes ("text": its text) and children. */
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v; else if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    children.forEach((c) => node.append(c));
    return node;
  };
  window.GeofoundryDom = {$, el};
})();
