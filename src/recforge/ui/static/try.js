// "Try it": events go to the mounted recforge serve API; lists are refetched after each event.
(function () {
  "use strict";
  const root = document.getElementById("try");
  if (!root) return;
  const slugs = JSON.parse(root.dataset.models);
  const labels = JSON.parse(root.dataset.labels);
  const key = root.dataset.key;
  const k = parseInt(root.dataset.k, 10);
  const scale = JSON.parse(root.dataset.scale);   // [lo, hi] for ratings, null for implicit data
  let user = root.dataset.user || newId();
  let busy = 0;

  function newId() { return "ui-" + Math.random().toString(36).slice(2, 10); }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [a, v] of Object.entries(attrs || {})) e.setAttribute(a, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function say(id, text) { document.getElementById(id).textContent = text; }
  function titleOf(it) { return it.title + (it.year && !/\(\d{4}\)$/.test(it.title) ? " (" + it.year + ")" : ""); }

  async function getJSON(url, opts) {
    const r = await fetch(url, opts);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const d = body.detail;
      throw new Error(typeof d === "string" ? d : (Array.isArray(d) && d[0] ? d[0].msg : r.status + ""));
    }
    return body;
  }

  async function refresh() {
    busy++;
    root.setAttribute("aria-busy", "true");
    try {
      const lists = await Promise.all(slugs.map((s) =>
        getJSON("/svc/" + s + "/v1/users/" + encodeURIComponent(user) + "/recommendations?k=" + k)));
      const explained = await Promise.all(lists.map((l) =>
        getJSON("/api/explain?user=" + encodeURIComponent(user) + "&source=" + encodeURIComponent(l.source) +
                "&items=" + l.items.map((x) => encodeURIComponent(x.item_id)).join(","))));
      const sets = lists.map((l) => new Set(l.items.map((x) => String(x.item_id))));
      lists.forEach((l, c) => {
        const ol = document.getElementById("recs-" + slugs[c]);
        say("meta-" + slugs[c], "version " + l.model_version + " · source " + l.source);
        ol.replaceChildren();
        explained[c].items.forEach((it, r) => {
          const li = el("li", {"class": "rec", "data-item": String(it.item_id)});
          const others = labels.filter((_, o) => o !== c && sets[o].has(String(it.item_id)));
          if (others.length) li.classList.add("overlap");
          const head = el("div", {"class": "rec-head"});
          head.appendChild(el("span", {"class": "rec-title"}, titleOf(it)));
          if (others.length) head.appendChild(el("span", {"class": "tag both"}, "on both · also " + others.join(", ")));
          li.appendChild(head);
          const ul = el("ul", {"class": "reasons", "aria-label": "Why"});
          it.reasons.forEach((t) => ul.appendChild(el("li", {"class": "reason"}, t)));
          li.appendChild(ul);
          const sc = l.items[r].score;
          li.appendChild(el("p", {"class": "by"}, labels[c] + " · " + l.source + (sc === null ? " · no score (fallback)" : " · score " + sc.toFixed(3))));
          ol.appendChild(li);
        });
      });
      root.dataset.refreshed = String(Date.now());
    } catch (e) {
      say("event-status", "Could not load recommendations: " + e.message);
    } finally {
      busy--;
      if (!busy) root.removeAttribute("aria-busy");
    }
  }

  async function loadHistory() {
    const h = await getJSON("/api/history?user=" + encodeURIComponent(user));
    say("user-label", user);
    say("user-note", h.known ? "(" + h.n_train + " interactions in the dataset)" : "(new: no history in the dataset)");
    const ol = document.getElementById("events");
    ol.replaceChildren();
    h.recent.forEach((e) => ol.appendChild(el("li", {}, e.title + (scale ? " — " + e.value : " — liked"))));
  }

  async function send(item, title, type, value) {
    const body = {user_id: user, item_id: item, type: type};
    if (value !== null) body.value = value;
    try {
      await getJSON("/svc/" + slugs[0] + "/v1/events", {
        method: "POST", headers: {"Content-Type": "application/json", "X-API-Key": key}, body: JSON.stringify(body)});
      say("event-status", (type === "rating" ? "Rated " + title + " " + value : "Liked " + title) + ". Lists updated.");
      await loadHistory();
      await refresh();
    } catch (e) {
      say("event-status", "Event not recorded: " + e.message);
    }
  }

  function resultItem(it) {
    const li = el("li", {"class": "result"});
    const t = titleOf(it);
    li.appendChild(el("span", {"class": "res-title"}, t));
    if (it.genres.length) li.appendChild(el("span", {"class": "muted genres"}, " " + it.genres.join(", ")));
    const g = el("div", {"class": "rate", "role": "group", "aria-label": "Rate " + t});
    if (scale) {
      const lo = Math.round(scale[0]), hi = Math.round(scale[1]);
      for (let v = lo; v <= hi; v++) {
        const b = el("button", {"type": "button", "class": "star", "aria-label": "Rate " + t + " " + v + " of " + hi}, String(v));
        b.addEventListener("click", () => send(it.item_id, t, "rating", v));
        g.appendChild(b);
      }
    }
    const like = el("button", {"type": "button", "class": "like", "aria-label": "Like " + t}, "Like");
    like.addEventListener("click", () => send(it.item_id, t, "like", scale ? scale[1] : null));
    g.appendChild(like);
    li.appendChild(g);
    return li;
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    const q = document.getElementById("q").value;
    const genre = document.getElementById("genre").value;
    let url = "/api/search?limit=15&q=" + encodeURIComponent(q) + "&genre=" + encodeURIComponent(genre);
    for (const [id, name] of [["year-min", "year_min"], ["year-max", "year_max"]]) {
      const box = document.getElementById(id);
      if (box && box.value) url += "&" + name + "=" + encodeURIComponent(box.value);
    }
    let res;
    try { res = await getJSON(url); } catch (e) { say("search-status", "Search failed: " + e.message); return; }
    const ul = document.getElementById("results");
    ul.replaceChildren(...res.items.map(resultItem));
    ul.dataset.query = q;  // which search the list answers (the page searches once on load)
    say("search-status", res.items.length ? res.items.length + " items, most popular first." : "Nothing matches.");
  }

  function setUser(id) {
    user = id;
    const url = new URL(window.location.href);
    url.searchParams.set("user", id);
    window.history.replaceState(null, "", url);
    loadHistory().then(refresh);
  }

  document.getElementById("search").addEventListener("submit", search);
  document.getElementById("genre").addEventListener("change", search);
  document.getElementById("new-user").addEventListener("click", () => { setUser(newId()); say("event-status", "New user started."); });
  document.getElementById("existing").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = document.getElementById("existing-id").value.trim();
    if (v) setUser(v);
  });
  search();
  setUser(user);
})();
