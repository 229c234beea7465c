// The API page (/api/docs): fetches the OpenAPI document and lists every operation, grouped by tag,
// with its parameters, request body and responses, then every schema they name. Ours, no library:
// the document's text only ever goes into textContent, never into HTML.
"use strict";

(function () {
  const root = document.getElementById("api-docs");
  if (!root) return;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const refName = (ref) => ref.split("/").pop();
  let schemas = {};
  const schemaId = (name) => "schema-" + name;

  // A schema in one line: a link for a $ref, the type and its constraints otherwise.
  function typeOf(schema) {
    if (!schema) return el("span", { class: "muted" }, "any");
    if (schema.$ref) {
      const name = refName(schema.$ref);
      return el("a", { href: "#" + schemaId(name), class: "schema-ref" }, name);
    }
    for (const key of ["anyOf", "oneOf", "allOf"]) {
      if (schema[key]) {
        const span = el("span", {});
        schema[key].forEach((part, i) => {
          if (i) span.append(key === "allOf" ? " & " : " | ");
          span.append(typeOf(part));
        });
        return span;
      }
    }
    if (schema.type === "array") return el("span", {}, "array of ", typeOf(schema.items));
    if (schema.const !== undefined) return el("code", {}, JSON.stringify(schema.const));
    if (schema.enum) return el("span", {}, "one of ", el("code", {}, schema.enum.join(" | ")));
    const bits = [schema.type || (schema.properties ? "object" : "any")];
    if (schema.format) bits.push("(" + schema.format + ")");
    for (const [key, sign] of [["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"]]) {
      if (schema[key] !== undefined) bits.push(sign + " " + schema[key]);
    }
    if (schema.maxLength !== undefined) bits.push("≤ " + schema.maxLength + " characters");
    if (schema.default !== undefined) bits.push("default " + JSON.stringify(schema.default));
    return el("span", {}, bits.join(" "));
  }

  // An object schema's properties as a table (allOf parts merged); anything else in one line.
  function schemaBlock(schema) {
    // the parts of an allOf (the upload form's model and its file part) shown as one list of fields
    const parts = schema && schema.allOf
      ? schema.allOf.map((part) => (part.$ref && schemas[refName(part.$ref)]) || part)
      : [schema];
    const rows = [];
    for (const part of parts) {
      if (part && part.properties) {
        const required = new Set(part.required || []);
        for (const [name, prop] of Object.entries(part.properties)) {
          rows.push(el("tr", {},
            el("td", {}, el("code", {}, name), required.has(name) ? el("span", { class: "req" }, " required") : null),
            el("td", {}, typeOf(prop)),
            el("td", {}, prop.description || "")));
        }
      } else if (part) {
        rows.push(el("tr", {}, el("td", { colspan: "3" }, typeOf(part))));
      }
    }
    return el("table", { class: "list api-fields" },
      el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description"))),
      el("tbody", {}, ...rows));
  }

  function content(body) {
    const out = [];
    for (const [media, item] of Object.entries((body && body.content) || {})) {
      out.push(el("div", { class: "media" }, el("code", {}, media), " ", typeOf(item.schema)));
      if (item.schema && (item.schema.properties || item.schema.allOf)) out.push(schemaBlock(item.schema));
    }
    return out;
  }

  function operation(method, path, op, doc) {
    const id = op.operationId || method + path;
    const card = el("section", { class: "card api-op", id: "op-" + id, "data-method": method.toUpperCase(), "data-path": path },
      el("h3", {}, el("span", { class: "verb verb-" + method }, method.toUpperCase()), " ", el("code", { class: "path" }, path)),
      el("p", {}, op.summary || ""));
    if (op.description) card.append(el("p", { class: "hint" }, op.description));
    if (op.security) {
      const schemes = (doc.components && doc.components.securitySchemes) || {};
      const ways = op.security.flatMap((s) => Object.keys(s)).map((name) => {
        const scheme = schemes[name] || {};
        return scheme.name ? scheme.name + " (" + scheme.in + ")" : name;
      });
      card.append(el("p", { class: "auth" }, "Caller: ", ways.join(", or ")));
    }
    const params = op.parameters || [];
    if (params.length) {
      card.append(el("h4", {}, "Parameters"), el("table", { class: "list api-params" },
        el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description"))),
        el("tbody", {}, ...params.map((p) => el("tr", {},
          el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
          el("td", {}, p.in), el("td", {}, typeOf(p.schema)), el("td", {}, p.description || ""))))));
    }
    if (op.requestBody) card.append(el("h4", {}, "Request body"), ...content(op.requestBody));
    const responses = Object.entries(op.responses || {});
    if (responses.length) {
      card.append(el("h4", {}, "Responses"), el("table", { class: "list api-responses" },
        el("thead", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "description"), el("th", {}, "body"))),
        el("tbody", {}, ...responses.map(([status, r]) => el("tr", {},
          el("td", { class: "num" }, status), el("td", {}, r.description || ""),
          el("td", {}, ...Object.entries(r.content || {}).map(([media, item]) =>
            el("div", {}, el("code", {}, media), " ", typeOf(item.schema)))))))));
    }
    return card;
  }

  function show(doc) {
    root.textContent = "";
    schemas = (doc.components && doc.components.schemas) || {};
    const info = doc.info || {};
    root.append(el("p", { class: "meta" }, (info.title || "") + " API " + (info.version || "") + " · OpenAPI " + doc.openapi));
    if (info.description) root.append(el("p", {}, info.description));
    const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
        byTag.get(tag).ops.push([method, path, op]);
      }
    }
    const toc = el("ul", { class: "api-toc" });
    root.append(toc);
    for (const { tag, ops } of byTag.values()) {
      if (!ops.length) continue;
      const slug = "tag-" + tag.name.replace(/[^A-Za-z0-9]+/g, "-");
      toc.append(el("li", {}, el("a", { href: "#" + slug }, tag.name), " (" + ops.length + ")"));
      root.append(el("h2", { id: slug }, tag.name));
      if (tag.description) root.append(el("p", { class: "hint" }, tag.description));
      for (const [method, path, op] of ops) root.append(operation(method, path, op, doc));
    }
    const named = Object.entries(schemas);
    if (named.length) {
      toc.append(el("li", {}, el("a", { href: "#schemas" }, "Schemas"), " (" + named.length + ")"));
      root.append(el("h2", { id: "schemas" }, "Schemas"));
      for (const [name, schema] of named) {
        const card = el("section", { class: "card api-schema", id: schemaId(name) }, el("h3", {}, name));
        if (schema.description) card.append(el("p", { class: "hint" }, schema.description));
        card.append(schema.properties || schema.allOf ? schemaBlock(schema) : el("p", {}, typeOf(schema)));
        root.append(card);
      }
    }
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch(root.dataset.src, { headers: { Accept: "application/json" } })
    .then((r) => {
      if (!r.ok) throw new Error("the document answered " + r.status);
      return r.json();
    })
    .then(show)
    .catch((err) => {
      root.textContent = "";
      root.append(el("p", { class: "msg error", role: "alert" }, "Could not load the API document: " + err.message));
    });
})();
