// Knowflow's progressive enhancement. Every page works without it; with it, the inbox is
// live, lookups appear as you type, and @people and #tags complete themselves. Text from
// the server is always put in the page with textContent, never as HTML.
"use strict";

(function () {
  function debounce(fn, ms) {
    let timer = null;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  // --- The live inbox: the unread badge everywhere, new items on the inbox page. ---------
  function startLive() {
    const url = document.body.dataset.live;
    if (!url || !window.EventSource) return;
    const badge = document.getElementById("unread-badge");
    const list = document.querySelector("[data-inbox]");
    const status = document.getElementById("live-status");
    const source = new EventSource(url);
    source.addEventListener("unread", (event) => {
      const count = JSON.parse(event.data).unread;
      if (!badge) return;
      badge.dataset.count = String(count);
      badge.firstChild.textContent = String(count);
      badge.hidden = count === 0;
    });
    source.addEventListener("notification", (event) => {
      const item = JSON.parse(event.data);
      if (!list || list.querySelector(`[data-id="${CSS.escape(item.id)}"]`)) return;
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      const card = element("li", { class: "card unread", "data-id": item.id });
      const meta = element("p", { class: "meta" });
      meta.append(element("span", { class: "kind" }, item.kind.replaceAll("_", " ")), " · just now · ", element("strong", {}, "unread"));
      const heading = element("h2", { class: "h3" });
      heading.append(element("a", { href: item.url.replace(/^\/api\/v1/, "") || "/" }, item.title));
      card.append(meta, heading, element("p", { class: "why" }, item.reason));
      list.prepend(card);
      if (status) status.textContent = `New: ${item.title}`;
    });
  }

  // --- Lookups as you type: <input data-lookup="/url" data-lookup-target="id">. ----------
  // The URL answers {"items": [{"text", "href", "detail"}]} (a page of this site).
  function startLookups() {
    for (const input of document.querySelectorAll("[data-lookup]")) {
      const target = document.getElementById(input.dataset.lookupTarget);
      if (!target) continue;
      const form = input.form;
      const run = debounce(async () => {
        const params = new URLSearchParams();
        for (const name of (input.dataset.lookupFields || input.name).split(",")) {
          const field = form ? form.elements.namedItem(name) : null;
          if (field && "value" in field) params.set(name, field.value);
        }
        // Nothing worth asking about until the fields hold a few characters between them.
        if (Array.from(params.values()).join(" ").trim().length < 3) {
          target.replaceChildren();
          return;
        }
        try {
          const data = await getJson(`${input.dataset.lookup}?${params}`);
          render(target, data);
        } catch (error) {
          target.replaceChildren();
        }
      }, 300);
      input.addEventListener("input", run);
      for (const name of (input.dataset.lookupFields || "").split(",")) {
        const field = form && name ? form.elements.namedItem(name) : null;
        if (field && field !== input && field.addEventListener) field.addEventListener("input", run);
      }
    }
  }

  function render(target, data) {
    const items = data.items || [];
    const nodes = [];
    if (data.heading) nodes.push(element("h2", { class: "h3" }, items.length ? data.heading : data.empty || ""));
    if (items.length) {
      const list = element("ul", { class: "plain" });
      for (const item of items) {
        const entry = element("li");
        entry.append(item.href ? element("a", { href: item.href }, item.text) : element("span", {}, item.text));
        if (item.detail) entry.append(element("p", { class: "why" }, item.detail));
        list.append(entry);
      }
      nodes.push(list);
    }
    target.replaceChildren(...nodes);
  }

  // --- @people and #tags completing themselves in text fields with data-autocomplete. ----
  // GET /autocomplete?kind=people|tags&prefix=… answers {"items": [{"value", "label"}]}.
  function startAutocomplete() {
    let counter = 0;
    for (const field of document.querySelectorAll("[data-autocomplete]")) {
      counter += 1;
      const listId = `autocomplete-${counter}`;
      const list = element("ul", { class: "suggestions", role: "listbox", id: listId, hidden: "" });
      const label = field.labels && field.labels[0] ? field.labels[0].textContent : "text";
      list.setAttribute("aria-label", `Suggestions for ${label}`);
      field.after(list);
      field.setAttribute("aria-autocomplete", "list");
      field.setAttribute("aria-controls", listId);
      let active = -1;
      let token = null;

      function close() {
        list.hidden = true;
        list.replaceChildren();
        field.removeAttribute("aria-activedescendant");
        active = -1;
        token = null;
      }

      function currentToken() {
        const upto = field.value.slice(0, field.selectionStart);
        const match = /(^|[\s(])([@#])([\w-]{1,50})$/.exec(upto);
        if (!match) return null;
        return { sigil: match[2], prefix: match[3], start: upto.length - match[3].length - 1 };
      }

      function choose(index) {
        const option = list.children[index];
        if (!option || !token) return;
        const before = field.value.slice(0, token.start);
        const after = field.value.slice(field.selectionStart);
        const insert = `${token.sigil}${option.dataset.value} `;
        field.value = before + insert + after;
        const caret = before.length + insert.length;
        field.setSelectionRange(caret, caret);
        close();
        field.focus();
      }

      function highlight(index) {
        const options = list.children;
        if (!options.length) return;
        active = (index + options.length) % options.length;
        for (let i = 0; i < options.length; i += 1) options[i].setAttribute("aria-selected", String(i === active));
        field.setAttribute("aria-activedescendant", options[active].id);
      }

      const lookup = debounce(async () => {
        token = currentToken();
        if (!token) return close();
        const kind = token.sigil === "@" ? "people" : "tags";
        try {
          const data = await getJson(`/autocomplete?kind=${kind}&prefix=${encodeURIComponent(token.prefix)}`);
          list.replaceChildren();
          (data.items || []).forEach((item, index) => {
            const option = element("li", { role: "option", id: `${listId}-${index}`, "data-value": item.value, "aria-selected": "false" }, item.label);
            option.addEventListener("mousedown", (event) => { event.preventDefault(); choose(index); });
            list.append(option);
          });
          list.hidden = list.children.length === 0;
          active = -1;
        } catch (error) {
          close();
        }
      }, 200);

      field.addEventListener("input", lookup);
      field.addEventListener("blur", () => setTimeout(close, 150));
      field.addEventListener("keydown", (event) => {
        if (list.hidden) return;
        if (event.key === "ArrowDown") { event.preventDefault(); highlight(active + 1); }
        else if (event.key === "ArrowUp") { event.preventDefault(); highlight(active - 1); }
        else if ((event.key === "Enter" || event.key === "Tab") && active >= 0) { event.preventDefault(); choose(active); }
        else if (event.key === "Escape") { event.preventDefault(); close(); }
      });
    }
  }

  // --- Buttons that ask first: <button data-confirm="Delete this answer?">. -------------
  function startConfirmations() {
    document.addEventListener("submit", (event) => {
      const button = event.submitter;
      const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
      if (question && !window.confirm(question)) event.preventDefault();
    });
  }

  // --- A token in the URL's fragment (#token=…, never sent to a server) into its field. --
  function fillFragmentTokens() {
    const values = new URLSearchParams(window.location.hash.slice(1));
    for (const field of document.querySelectorAll("[data-fragment-token]")) {
      const value = values.get(field.dataset.fragmentToken);
      if (value && !field.value) field.value = value;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    fillFragmentTokens();
    startLive();
    startLookups();
    startAutocomplete();
    startConfirmations();
  });
})();
