// lit-edge review: the page. Plain JavaScript, no library, no build step, nothing from a network.
//
// The grid shows "units": a photo, or (in the Events view) a whole event. Every key acts on the
// selected unit, then the selection moves on. Writes go out one at a time, in key order (so an
// undo always follows the action it undoes), and a card turns to "saved" only when the server has
// committed the write.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const OUTCOME_KEYS = { b: "blank", h: "human", v: "vehicle", u: "unknown" };
const $ = (id) => document.getElementById(id);

const state = {
  view: "doubt",
  status: "todo",
  group: null, // the species or folder shown, in the views that have groups
  chosen: {}, // "species" | "folders" -> the group last chosen there
  groups: [],
  units: [], // {kind: "photo", item} | {kind: "event", event}
  next: null, // cursor (photos) or offset (events) of the next page; null: no more
  loading: false,
  generation: 0, // bumps when the view changes, so late answers for an old view are dropped
  sel: -1,
  undo: [], // stack of lists of annotation ids, one list per action
  last: 0, // newest annotation id this page knows about
  byId: new Map(), // media id -> item
  cards: new Map(), // media id -> its grid elements (a photo may be in an event strip)
  chain: Promise.resolve(),
  busy: 0,
};

// ---------------------------------------------------------------------------------------- helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function fmtScore(s) {
  return s == null ? "" : (100 * s).toFixed(0) + "%";
}

function label(name, common) {
  return common ? `${name} (${common})` : name || "";
}

let toastTimer = null;
function toast(message, kind) {
  const t = $("toast");
  t.textContent = message;
  t.className = kind || "";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), kind === "error" ? 6000 : 2500);
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN },
    body: JSON.stringify(body),
  };
  const res = await fetch(path, opts);
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  return data;
}

function setBusy(delta) {
  state.busy += delta;
  document.body.dataset.busy = String(state.busy);
}

// Writes run one after another, in the order the keys were pressed.
function enqueue(fn) {
  setBusy(1);
  const run = state.chain.then(fn).catch((e) => toast(e.message, "error")).finally(() => setBusy(-1));
  state.chain = run;
  return run;
}

// ------------------------------------------------------------------------------------ the units
function unitIds(u) {
  return u.kind === "event" ? u.event.members.map((m) => m.id) : [u.item.id];
}

function unitItems(u) {
  return u.kind === "event" ? u.event.members : [u.item];
}

function unitDone(u) {
  return unitItems(u).every((m) => m.annotation);
}

function unitPreds(u) {
  return u.kind === "event" ? u.event.preds : u.item.preds;
}

function lead(u) {
  // the photo that stands for a unit: an event's highest-scoring member
  if (u.kind !== "event") return u.item;
  return u.event.members.reduce((a, b) => ((b.top.score || 0) > (a.top.score || 0) ? b : a));
}

function remember(item) {
  const known = state.byId.get(item.id);
  if (known) Object.assign(known, item);
  state.byId.set(item.id, known || item);
  return known || item;
}

// --------------------------------------------------------------------------------------- loading
function pageUrl() {
  const p = new URLSearchParams({ status: state.status });
  if (state.view === "events") {
    p.set("folder", state.group);
    p.set("offset", state.next == null ? 0 : state.next);
    return "/api/events?" + p;
  }
  p.set("order", state.view === "deployments" ? "time" : "doubt");
  if (state.view === "species") p.set("species", state.group);
  if (state.view === "deployments") p.set("folder", state.group);
  if (state.next) p.set("after", state.next);
  return "/api/page?" + p;
}

async function loadMore() {
  if (state.loading || (state.units.length && state.next == null)) return;
  if (state.view !== "doubt" && state.group == null) return;
  state.loading = true;
  const gen = state.generation;
  try {
    const data = await api(pageUrl());
    if (gen !== state.generation) return;
    const units =
      state.view === "events"
        ? data.events.map((e) => {
            e.members = e.members.map(remember);
            return { kind: "event", event: e };
          })
        : data.items.map((i) => ({ kind: "photo", item: remember(i) }));
    state.next = data.next;
    const first = state.units.length;
    state.units.push(...units);
    units.forEach((u, k) => $("grid").append(card(u, first + k)));
    if (state.sel < 0 && state.units.length) select(0);
    if (!state.units.length) {
      $("grid").append(el("p", { class: "empty", text: emptyText() }));
      showDetail(null);
    }
  } catch (e) {
    toast(e.message, "error");
  } finally {
    if (gen === state.generation) state.loading = false;
    document.body.dataset.ready = "1";
  }
}

function emptyText() {
  if (state.status === "todo") return "Nothing left to verify here.";
  if (state.status === "verified") return "Nothing verified here yet.";
  return "No photos here.";
}

function groupKind() {
  return state.view === "species" ? "species" : "folders";
}

async function loadGroups() {
  const kind = groupKind();
  const data = await api("/api/" + kind);
  state.groups = data.groups;
  $("groups-title").textContent = state.view === "species" ? "Species (machine)" : "Folders";
  const list = $("group-list");
  list.replaceChildren();
  for (const g of data.groups) {
    const name = state.view === "species" ? label(g.key, g.common) : g.name;
    const li = el(
      "li",
      { "data-key": g.key, title: g.key },
      el("span", { class: "gname", text: name }),
      el("span", { class: "gcount", text: `${g.verified}/${g.count}` })
    );
    li.addEventListener("click", () => chooseGroup(g.key));
    list.append(li);
  }
  if (state.group == null || !data.groups.some((g) => g.key === state.group)) {
    const todo = data.groups.find((g) => g.verified < g.count) || data.groups[0];
    state.group = todo ? todo.key : null;
  }
  state.chosen[kind] = state.group;
  markGroup();
}

function markGroup() {
  for (const li of $("group-list").children) li.classList.toggle("selected", li.dataset.key === state.group);
}

function resetUnits() {
  state.generation += 1;
  state.units = [];
  state.next = null;
  state.sel = -1;
  state.loading = false;
  state.cards = new Map();
  $("grid").replaceChildren();
}

async function setView(view) {
  state.view = view;
  for (const b of $("views").children) b.setAttribute("aria-selected", String(b.dataset.view === view));
  document.body.dataset.view = view;
  resetUnits();
  $("groups").hidden = view === "doubt";
  if (view !== "doubt") {
    state.group = state.chosen[groupKind()] ?? null;
    await loadGroups();
  }
  await loadMore();
}

function chooseGroup(key) {
  state.group = key;
  state.chosen[groupKind()] = key;
  markGroup();
  resetUnits();
  loadMore();
}

function moveGroup(step) {
  if (!state.groups.length) return;
  const i = state.groups.findIndex((g) => g.key === state.group);
  const j = Math.min(state.groups.length - 1, Math.max(0, i + step));
  if (j !== i) chooseGroup(state.groups[j].key);
}

// ----------------------------------------------------------------------------------------- cards
function badgeText(item) {
  const a = item.annotation;
  return a ? label(a.label, a.common) : "";
}

function photoCard(item) {
  // grid thumbnails yield to the previews (the photo a reviewer looks at next)
  const img = el("img", { loading: "lazy", fetchPriority: "low", alt: item.file, src: `/thumb/${item.id}` });
  const cap = el(
    "div",
    { class: "cap" },
    el("span", { class: "top", text: item.top.common || item.top.name || "" }),
    el("span", { class: "score", text: fmtScore(item.top.score) })
  );
  const badge = el("div", { class: "badge" });
  const node = el("div", { class: "photo", "data-id": item.id }, img, cap, badge);
  const list = state.cards.get(item.id) || [];
  list.push(node);
  state.cards.set(item.id, list);
  paintPhoto(node, item);
  return node;
}

function paintPhoto(node, item) {
  node.dataset.label = item.annotation ? item.annotation.label : "";
  node.classList.toggle("verified", !!item.annotation);
  node.classList.toggle("agrees", !!item.annotation && item.annotation.label === item.top.name);
  node.querySelector(".badge").textContent = badgeText(item);
}

function card(u, index) {
  let node;
  if (u.kind === "event") {
    const e = u.event;
    const strip = el("div", { class: "strip" }, ...e.members.map(photoCard));
    const head = el(
      "div",
      { class: "ehead" },
      el("span", { text: `${e.members.length} photo${e.members.length > 1 ? "s" : ""}` }),
      el("span", { class: "meta", text: (e.start || "").replace("T", " ") }),
      el("span", { class: "top", text: e.preds.length ? label(e.preds[0].name, e.preds[0].common) : "" })
    );
    node = el("div", { class: "unit event", "data-event": e.id }, head, strip);
  } else {
    node = el("div", { class: "unit" }, photoCard(u.item));
  }
  node.dataset.index = String(index);
  node.addEventListener("click", () => select(index));
  node.addEventListener("dblclick", () => openFull());
  paintUnit(node, u);
  return node;
}

function paintUnit(node, u) {
  node.classList.toggle("done", unitDone(u));
}

function repaint(mediaId) {
  const item = state.byId.get(mediaId);
  for (const node of state.cards.get(mediaId) || []) paintPhoto(node, item);
  state.units.forEach((u, i) => {
    if (unitIds(u).includes(mediaId)) paintUnit($("grid").children[i], u);
  });
  const u = state.units[state.sel];
  if (u && unitIds(u).includes(mediaId)) showDetail(u);
}

// ------------------------------------------------------------------------------------ selection
function select(i) {
  if (!state.units.length) return;
  i = Math.max(0, Math.min(state.units.length - 1, i));
  const grid = $("grid");
  if (state.sel >= 0 && grid.children[state.sel]) grid.children[state.sel].classList.remove("selected");
  state.sel = i;
  const node = grid.children[i];
  node.classList.add("selected");
  node.scrollIntoView({ block: "nearest" });
  showDetail(state.units[i]);
  prefetch(i);
  if (state.units.length - i < 12) loadMore();
}

function prefetch(i) {
  // the next few previews, so the next photo shows at once
  for (const u of state.units.slice(i + 1, i + 4)) {
    const img = new Image();
    img.fetchPriority = "high";
    img.src = `/thumb/${lead(u).id}?size=preview`;
  }
}

function columns() {
  const grid = $("grid");
  const first = grid.children[0];
  if (!first || state.view === "events") return 1;
  return Math.max(1, Math.round(grid.clientWidth / first.getBoundingClientRect().width));
}

function advance() {
  // the next unit still to verify (in the to-do list), else simply the next one
  for (let j = state.sel + 1; j < state.units.length; j++) {
    if (state.status !== "todo" || !unitDone(state.units[j])) return select(j);
  }
  if (state.sel + 1 < state.units.length) select(state.sel + 1);
  else loadMore().then(() => state.sel + 1 < state.units.length && select(state.sel + 1));
}

// --------------------------------------------------------------------------------------- detail
let historyFor = null;
function showDetail(u) {
  const body = document.body;
  if (!u) {
    $("preview").removeAttribute("src");
    $("detail-title").textContent = "";
    $("detail-meta").textContent = "";
    $("decision").textContent = "";
    $("suggestions").replaceChildren();
    $("verdict").textContent = "";
    $("history").replaceChildren();
    body.dataset.selected = "";
    return;
  }
  const item = lead(u);
  const src = `/thumb/${item.id}?size=preview`;
  if ($("preview").getAttribute("src") !== src) $("preview").src = src;
  body.dataset.selected = unitIds(u).join(",");
  if (u.kind === "event") {
    $("detail-title").textContent = `Event ${u.event.id}`;
    $("detail-meta").textContent = `${u.event.members.length} photos · ${(u.event.start || "").replace("T", " ")} – ${(u.event.end || "").replace("T", " ")}`;
  } else {
    $("detail-title").textContent = item.file;
    $("detail-meta").textContent = `${(item.captured_at || "no time").replace("T", " ")} · ${item.folder}`;
  }
  $("decision").replaceChildren(
    el("span", { class: "meta", text: "machine: " }),
    el("b", { text: label(item.top.name, item.top.common) }),
    el("span", { class: "meta", text: ` ${item.top.rank || ""} ${fmtScore(item.top.score)}` })
  );
  const sug = $("suggestions");
  sug.replaceChildren();
  unitPreds(u).slice(0, 9).forEach((p, k) => {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${Math.round(100 * p.score)}%`;
    sug.append(
      el(
        "li",
        { "data-name": p.name },
        el("kbd", { text: String(k + 1) }),
        el("span", { class: "sname", text: label(p.name, p.common) }),
        el("span", { class: "score", text: fmtScore(p.score) }),
        el("span", { class: "track" }, bar)
      )
    );
  });
  const items = unitItems(u);
  const done = items.filter((m) => m.annotation);
  const verdict = $("verdict");
  if (!done.length) verdict.textContent = "not verified yet";
  else if (u.kind === "event") verdict.textContent = `verified ${done.length} of ${items.length}: ${[...new Set(done.map((m) => m.annotation.label))].join(", ")}`;
  else {
    const a = item.annotation;
    verdict.textContent = `verified: ${label(a.label, a.common)} — ${a.reviewer}, ${a.at.replace("T", " ").slice(0, 19)}`;
  }
  verdict.className = done.length ? "yes" : "";
  if (u.kind === "photo" && historyFor !== `${item.id}:${item.annotation ? item.annotation.id : 0}`) {
    historyFor = `${item.id}:${item.annotation ? item.annotation.id : 0}`;
    api(`/api/media/${item.id}`)
      .then((d) => {
        const h = $("history");
        h.replaceChildren(
          ...d.history.map((a) =>
            el("li", { text: `${a.retracted ? "undone: " : ""}${label(a.label, a.common)} — ${a.reviewer}, ${a.at.replace("T", " ").slice(0, 19)}` })
          )
        );
        $("history-box").hidden = !d.history.length;
      })
      .catch(() => {});
  } else if (u.kind === "event") {
    $("history-box").hidden = true;
  }
}

// ---------------------------------------------------------------------------------------- writes
function applyWritten(data, quiet) {
  const ids = [];
  for (const w of data.written) {
    const item = state.byId.get(w.media_id);
    if (item) item.annotation = w.annotation;
    if (w.ids.length && w.annotation) ids.push(w.annotation.id);
    if (!quiet && w.superseded && w.superseded.reviewer !== reviewer() && w.ids.length) {
      toast(`${w.superseded.reviewer} had said ${w.superseded.label}; yours replaces it (both are kept)`);
    }
    repaint(w.media_id);
  }
  return ids;
}

function write(path, body, note) {
  const u = state.units[state.sel];
  if (!u) return;
  if (!reviewer()) {
    toast("type your name in the reviewer box first", "error");
    $("reviewer").focus();
    return;
  }
  const ids = unitIds(u);
  for (const id of ids) for (const n of state.cards.get(id) || []) n.classList.add("pending");
  advance();
  return enqueue(async () => {
    try {
      const data = await api(path, { ...body, media_ids: ids, reviewer: reviewer() });
      const made = applyWritten(data);
      if (made.length) state.undo.push(made);
      if (note) toast(note);
      else if (!data.written.length) toast("nothing to accept: the machine did not decide; pick a name");
    } finally {
      for (const id of ids) for (const n of state.cards.get(id) || []) n.classList.remove("pending");
    }
    refreshProgress();
  });
}

function take(k) {
  const u = state.units[state.sel];
  if (!u) return;
  const p = unitPreds(u)[k - 1];
  if (!p) return toast(`there is no suggestion ${k}`);
  write("/api/annotate", { label: p.name, common: p.common });
}

function outcome(key) {
  write("/api/annotate", { label: OUTCOME_KEYS[key] });
}

function accept() {
  write("/api/accept", {});
}

function undo() {
  // queued like the writes, so "1 z" typed fast undoes the 1, whose answer is not back yet
  enqueue(async () => {
    const ids = state.undo.pop();
    if (!ids) return toast("nothing to undo");
    try {
      const data = await api("/api/undo", { annotation_ids: ids, reviewer: reviewer() });
      applyWritten(data, true);
      // an undone correction brought back a copy of the earlier word: undo that copy next time
      const copies = new Map(data.written.filter((w) => w.restores && w.annotation).map((w) => [w.restores, w.annotation.id]));
      state.undo = state.undo.map((entry) => entry.map((id) => copies.get(id) ?? id));
      const first = data.written[0] && data.written[0].media_id;
      const i = state.units.findIndex((u) => unitIds(u).includes(first));
      if (i >= 0) select(i);
      toast(`undone (${data.written.length} photo${data.written.length > 1 ? "s" : ""})`);
    } catch (e) {
      toast(e.message, "error");
    }
    refreshProgress();
  });
}

// ---------------------------------------------------------------------------------------- search
const search = { results: [], sel: 0, timer: null, seq: 0, done: Promise.resolve() };

function openSearch() {
  if (!state.units[state.sel]) return;
  $("search").hidden = false;
  const input = $("search-input");
  input.value = "";
  input.focus();
  search.done = runSearch();
}

function closeSearch() {
  $("search").hidden = true;
  $("grid").focus();
}

// What is typed before a comma is searched; "Genus species, common name" that matches nothing
// exactly is offered as a new name (first when a comma says that is what is meant, else last).
async function runSearch() {
  const q = $("search-input").value;
  const typed = q.split(",")[0].trim();
  const seq = ++search.seq;
  const data = await api("/api/names?" + new URLSearchParams({ q: typed }));
  if (seq !== search.seq) return;
  let results = data.names;
  if (typed && !results.some((n) => n.label.toLowerCase() === typed.toLowerCase())) {
    const common = q.includes(",") ? q.slice(q.indexOf(",") + 1).trim() : "";
    const fresh = { label: typed, common, kind: "new" };
    results = q.includes(",") || !results.length ? [fresh, ...results] : [...results, fresh];
  }
  search.results = results;
  search.sel = 0;
  paintSearch();
}

function onSearchInput() {
  clearTimeout(search.timer);
  search.seq += 1; // an answer to an older query is dropped
  search.done = new Promise((resolve) => {
    search.timer = setTimeout(() => runSearch().then(resolve, resolve), 60);
  });
}

function paintSearch() {
  const list = $("search-results");
  list.replaceChildren(
    ...search.results.map((n, i) => {
      const text = n.kind === "new" ? `new name: ${label(n.label, n.common)}` : label(n.label, n.common);
      const li = el("li", { role: "option", "data-label": n.label, "data-kind": n.kind, text });
      if (n.matched) li.append(el("span", { class: "meta", text: ` (synonym ${n.matched})` }));
      if (i === search.sel) li.classList.add("selected");
      li.addEventListener("mousedown", (e) => {
        e.preventDefault();
        search.sel = i;
        pick();
      });
      return li;
    })
  );
}

function pick() {
  const n = search.results[search.sel];
  if (!n) return;
  closeSearch();
  write("/api/annotate", { label: n.label, common: n.common, new: n.kind === "new" });
}

function searchKey(e) {
  if (e.key === "Escape") {
    e.preventDefault();
    closeSearch();
  } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const n = search.results.length;
    if (n) search.sel = (search.sel + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
    paintSearch();
  } else if (e.key === "Enter") {
    e.preventDefault();
    setBusy(1); // Enter takes what is typed, once its search has answered
    search.done.then(pick).finally(() => setBusy(-1));
  }
}

// ------------------------------------------------------------------------------------ full photo
function openFull() {
  const u = state.units[state.sel];
  if (!u) return;
  $("full-img").src = `/photo/${lead(u).id}`;
  $("full").hidden = false;
}

function closeOverlays() {
  $("full").hidden = true;
  $("help").hidden = true;
}

// ------------------------------------------------------------------------------------- keyboard
function onKey(e) {
  if (!$("search").hidden) return searchKey(e);
  if (e.target instanceof HTMLInputElement) {
    if (e.key === "Escape" || e.key === "Enter") e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key;
  const overlay = !$("full").hidden || !$("help").hidden;
  if (overlay) {
    if (k === "Escape" || k === "f" || k === " " || k === "?") {
      e.preventDefault();
      closeOverlays();
    }
    return;
  }
  let handled = true;
  if (k >= "1" && k <= "9") take(Number(k));
  else if (k in OUTCOME_KEYS) outcome(k);
  else if (k === "Enter") accept();
  else if (k === "z") undo();
  else if (k === "/") openSearch();
  else if (k === "f" || k === " ") openFull();
  else if (k === "?") $("help").hidden = false;
  else if (k === "ArrowRight" || k === "j") select(state.sel + 1);
  else if (k === "ArrowLeft" || k === "k") select(state.sel - 1);
  else if (k === "ArrowDown") select(state.sel + columns());
  else if (k === "ArrowUp") select(state.sel - columns());
  else if (k === "]") moveGroup(1);
  else if (k === "[") moveGroup(-1);
  else handled = false;
  if (handled) e.preventDefault();
}

// -------------------------------------------------------------------- progress and other reviewers
function reviewer() {
  return $("reviewer").value.trim();
}

let groupsTimer = null;
function refreshGroups() {
  // the side list's verified counts, once the keys stop for a moment
  clearTimeout(groupsTimer);
  if (state.view !== "doubt") groupsTimer = setTimeout(() => loadGroups().catch(() => {}), 1500);
}

async function refreshProgress(info) {
  const d = info || (await api("/api/info").catch(() => null));
  if (!d) return;
  $("progress-text").textContent = `${d.verified.toLocaleString()} of ${d.reviewable.toLocaleString()} verified`;
  $("progress-bar").value = d.reviewable ? d.verified / d.reviewable : 0;
  if (!info) refreshGroups();
}

async function poll() {
  try {
    const d = await api(`/api/changes?after=${state.last}`);
    state.last = Math.max(state.last, d.last);
    for (const c of d.changes) {
      const item = state.byId.get(c.media_id);
      if (!item) continue;
      const before = item.annotation ? item.annotation.id : null;
      item.annotation = c.annotation;
      if ((c.annotation ? c.annotation.id : null) !== before) repaint(c.media_id);
    }
    if (d.changes.length) refreshProgress({ verified: d.verified, reviewable: d.reviewable });
  } catch (e) {
    document.body.dataset.offline = "1";
    return;
  }
  document.body.dataset.offline = "0";
}

// ------------------------------------------------------------------------------------------ start
async function start() {
  const info = await api("/api/info");
  $("db-name").textContent = info.db_name;
  document.title = `lit-edge review · ${info.db_name}`;
  $("reviewer").value = localStorage.getItem("lit-edge-reviewer") || info.reviewer || "";
  $("reviewer").addEventListener("change", () => localStorage.setItem("lit-edge-reviewer", reviewer()));
  state.last = info.last_annotation;
  refreshProgress(info);
  for (const b of $("views").children) b.addEventListener("click", () => setView(b.dataset.view));
  for (const r of document.querySelectorAll('input[name="status"]')) {
    r.addEventListener("change", () => {
      state.status = r.value;
      r.blur();
      resetUnits();
      loadMore();
    });
  }
  $("help-button").addEventListener("click", () => ($("help").hidden = false));
  $("search-input").addEventListener("input", onSearchInput);
  $("full").addEventListener("click", closeOverlays);
  $("help").addEventListener("click", closeOverlays);
  document.addEventListener("keydown", onKey);
  setInterval(poll, 3000);
  const view = new URLSearchParams(location.search).get("view");
  await setView(["doubt", "species", "events", "deployments"].includes(view) ? view : "doubt");
}

document.body.dataset.busy = "0";
start().catch((e) => {
  toast(e.message, "error");
  document.body.dataset.ready = "error";
});
