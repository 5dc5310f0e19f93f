// The OpenAPI document of this service, rendered for people: every path and method with its
// parameters, request body, responses and the schemas they refer to. No external assets.
"use strict";

(() => {
  const { call, el, apiKey, setApiKey } = Mnemo;
  const $ = (id) => document.getElementById(id);
  const METHODS = ["get", "post", "put", "patch", "delete"];

  function refName(ref) {
    return ref.split("/").pop();
  }

  function schemaView(schema) {
    if (!schema) return el("span", { class: "muted" }, "–");
    if (schema.$ref) return el("a", { href: "#schema-" + refName(schema.$ref) }, refName(schema.$ref));
    return el("pre", {}, JSON.stringify(schema, null, 2));
  }

  function content(body) {
    const parts = [];
    for (const [type, media] of Object.entries((body && body.content) || {})) {
      parts.push(el("div", {}, el("code", {}, type), " ", schemaView(media.schema)));
    }
    return parts;
  }

  function resolve(doc, item) {
    if (item && item.$ref) {
      const path = item.$ref.replace(/^#\//, "").split("/");
      return path.reduce((node, key) => (node ? node[key] : undefined), doc) || item;
    }
    return item;
  }

  function operation(doc, path, method, op, shared) {
    const params = [...(shared || []), ...(op.parameters || [])].map((p) => resolve(doc, p));
    const secured = !(Array.isArray(op.security) && op.security.length === 0);
    const id = "op-" + (op.operationId || method + path);
    return el("section", { class: "op", id },
      el("div", {}, el("span", { class: "method " + method }, method), " ",
        el("span", { class: "path" }, path),
        secured ? el("span", { class: "lock" }, "API key") : el("span", { class: "lock" }, "open")),
      el("p", {}, op.summary || ""),
      op.description ? el("p", { class: "muted" }, op.description) : null,
      params.length ? el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
          el("th", {}, "required"), el("th", {}, "schema"), el("th", {}, "description"))),
        el("tbody", {}, params.map((p) => el("tr", {},
          el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
          el("td", {}, p.required ? "yes" : "no"),
          el("td", {}, el("code", {}, JSON.stringify(p.schema || {}))),
          el("td", {}, p.description || ""))))) : null,
      op.requestBody ? el("div", {}, el("h3", {}, "Request body"), content(op.requestBody)) : null,
      el("h3", {}, "Responses"),
      el("table", {}, el("tbody", {}, Object.entries(op.responses || {}).map(([code, r]) => {
        const response = resolve(doc, r);
        return el("tr", {}, el("td", {}, el("code", {}, code)),
          el("td", {}, response.description || ""), el("td", {}, content(response)));
      }))));
  }

  function render(doc) {
    const main = $("doc");
    const info = doc.info || {};
    const ops = [];
    const toc = [];
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const op = item[method];
        ops.push(operation(doc, path, method, op, item.parameters));
        toc.push(el("a", { href: "#op-" + (op.operationId || method + path) },
          `${method.toUpperCase()} ${path}`));
      }
    }
    const schemas = Object.entries((doc.components && doc.components.schemas) || {});
    const hooks = Object.entries(doc.webhooks || {});
    main.replaceChildren(
      el("section", { class: "card" }, el("h2", {}, `${info.title || "API"} ${info.version || ""}`),
        el("p", {}, info.description || ""), el("nav", { class: "toc" }, toc)),
      el("section", { class: "card", id: "paths" }, el("h2", {}, `Routes (${ops.length})`), ops),
      hooks.length ? el("section", { class: "card", id: "webhooks" },
        el("h2", {}, `Webhook events (${hooks.length})`),
        hooks.map(([name, item]) => {
          const op = item.post || {};
          return el("details", {}, el("summary", {}, el("code", {}, name), " ", op.summary || ""),
            op.requestBody ? content(op.requestBody) : null);
        })) : null,
      el("section", { class: "card", id: "schemas" }, el("h2", {}, `Schemas (${schemas.length})`),
        schemas.map(([name, schema]) => el("details", { id: "schema-" + name },
          el("summary", {}, el("code", {}, name)),
          el("pre", {}, JSON.stringify(schema, null, 2))))));
  }

  async function load() {
    try {
      render(await call("GET", "/openapi.json"));
      $("login").hidden = true;
    } catch (err) {
      $("login").hidden = false;
      if (err.status === 401) {
        if (apiKey()) $("login-error").textContent = "the service refused this key";
        setApiKey(null);
      } else {
        $("login-error").textContent = err.message;
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("raw").addEventListener("click", (e) => {
      // The raw document needs the key too: open it as a download made with the header.
      e.preventDefault();
      call("GET", "/openapi.json").then((doc) => {
        const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
        window.open(URL.createObjectURL(blob), "_blank", "noopener");
      }).catch((err) => { $("login-error").textContent = err.message; });
    });
    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      setApiKey($("key").value.trim());
      $("key").value = "";
      load();
    });
    load();
  });
})();
