// Shared by the dashboard and the docs page: the API key (kept in sessionStorage, sent as a
// header, never in a URL) and a fetch wrapper that turns error bodies into messages.
"use strict";

const Mnemo = (() => {
  const KEY = "mnemo-events.api-key";

  function apiKey() {
    return sessionStorage.getItem(KEY);
  }

  function setApiKey(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  }

  function headers(extra) {
    const all = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) all.Authorization = "Bearer " + key;
    return all;
  }

  class ApiError extends Error {
    constructor(status, detail, problems) {
      super(detail);
      this.status = status;
      this.problems = problems || [];
    }
  }

  async function call(method, path, body) {
    const init = { method, headers: headers({ Accept: "application/json" }), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = (data && data.detail) || response.statusText || "request failed";
      throw new ApiError(response.status, `${method} ${path}: ${response.status} ${detail}`,
        data && data.problems);
    }
    return data;
  }

  // Build an element from text nodes only: no value from the service is parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  return { apiKey, setApiKey, headers, call, el, ApiError };
})();
