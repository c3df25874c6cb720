// Renders /v1/openapi.json as a page. Text only becomes text nodes, never
// markup, so nothing in the document can run as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function resolve(doc, schema) {
  let s = schema, guard = 0;
  while (s && s.$ref && guard++ < 20) s = doc.components.schemas[s.$ref.split("/").pop()];
  return s;
}

// A short example-like sketch of a schema, as JSON text.
function sketch(doc, schema, depth) {
  const s = resolve(doc, schema) || {};
  if (depth > 4) return "…";
  if (s.oneOf) return s.oneOf.map((x) => sketch(doc, x, depth + 1)).join(" | ");
  const type = Array.isArray(s.type) ? s.type.filter((t) => t !== "null")[0] : s.type;
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (type === "array") return [sketch(doc, s.items, depth + 1)];
  if (type === "object" || s.properties) {
    const out = {};
    for (const [k, v] of Object.entries(s.properties || {})) {
      const opt = (s.required || []).includes(k) ? "" : "?";
      out[k + opt] = sketch(doc, v, depth + 1);
    }
    return out;
  }
  return (type || "any") + (s.format ? " (" + s.format + ")" : "");
}

function schemaBlock(doc, schema) {
  return el("pre", {}, JSON.stringify(sketch(doc, schema, 0), null, 2));
}

function render(doc) {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("description").textContent = doc.info.description || "";
  const main = document.getElementById("operations");
  const toc = document.getElementById("toc");
  main.replaceChildren();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method, path, op]);
    }
  }
  for (const [tag, ops] of byTag) {
    const id = "tag-" + tag.replace(/\W+/g, "-");
    toc.append(el("a", { href: "#" + id }, tag));
    main.append(el("h2", { id }, tag));
    for (const [method, path, op] of ops) {
      const box = el("section", { class: "op" },
        el("h3", {}, el("span", { class: "method " + method }, method), " ", el("code", {}, path)));
      if (op.description) box.append(el("p", {}, op.description));
      if (op.security && op.security.some((s) => Object.keys(s).length)) {
        const optional = op.security.some((s) => !Object.keys(s).length);
        box.append(el("p", {}, optional ? "Bearer token optional." : "Needs a bearer token."));
      }
      if (op.parameters && op.parameters.length) {
        const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "")));
        for (const p of op.parameters) {
          t.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))),
            el("td", {}, p.in), el("td", {}, p.description || "")));
        }
        box.append(t);
      }
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        const [type, media] = Object.entries(body)[0];
        box.append(el("p", {}, "Body (" + type + "):"), schemaBlock(doc, media.schema));
      }
      for (const [status, r0] of Object.entries(op.responses)) {
        const r = r0.$ref ? doc.components.responses[r0.$ref.split("/").pop()] : r0;
        box.append(el("p", {}, el("strong", {}, status), " " + (r.description || "")));
        const json = r.content && r.content["application/json"];
        if (json && json.schema && status !== "default") box.append(schemaBlock(doc, json.schema));
      }
      main.append(box);
    }
  }
}

fetch("/v1/openapi.json")
  .then((r) => r.json())
  .then(render)
  .catch((e) => {
    document.getElementById("operations").textContent = "Could not load the document: " + e;
  });
