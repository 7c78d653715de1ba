// The Live Tab page: follows /v1/live for the account and token in its own
// URL, keeps the newest items in memory keyed by cursor (so a resend, an
// update or a reconnect never shows a row twice), and opens a session's
// timeline from /v1/timeline. No dependency, no build step: livetab embeds
// this file into the page it serves.
"use strict";
(() => {
  const MAX_ROWS = 100;     // rows on screen
  const MAX_ITEMS = 1000;   // items kept in memory; the oldest are dropped
  const KINDS = ["hit", "event", "conversion"];
  const TEXT_FILTERS = ["event", "link", "campaign", "platform", "session"];
  const BACKOFF_MIN = 500, BACKOFF_MAX = 15000;
  const STALE_MS = 10000;   // a server that sends stats is dead after this much silence

  const $ = (id) => document.getElementById(id);
  const url = new URL(location.href);
  const account = url.searchParams.get("account") || "";
  let token = url.searchParams.get("token") || "";

  // ---------------------------------------------------------------- state
  /** items: cursor -> {it, v, fresh, updated}; order: cursors, ascending. */
  const items = new Map();
  let order = [];
  /** Sessions known to be paired (from conversions and converted marks). */
  const pairs = new Map();
  const seen = { event: new Set(), link: new Set(), campaign: new Set() };
  let counters = { hits: 0, events: 0, conversions: 0 };

  let filters = readFilters(url.searchParams);
  /** The filters the store was filled under, and the ones the server echoed. */
  let storeKey = null;
  let serverKey = null;
  /**
   * The newest cursor the server says this page has everything up to
   * (snapshot, resume and stats frames carry it): under sampling or a filter
   * it runs ahead of the newest item received, and resuming from it spares
   * the server a replay of what this page was never to be shown.
   */
  let serverCursor = 0;

  let ws = null;
  let attempt = 0;           // reconnect attempts since the last good frame
  let failedBeforeOpen = 0;  // consecutive sockets that never opened
  let reconnectAt = 0, reconnectTimer = 0;
  let lastReason = "";
  let closedForGood = false;
  let lastFrameAt = 0, statsSeen = false;
  let sampled = false, lastStatsAt = 0;
  const arrivals = { bins: new Array(30).fill(0), sec: 0 }; // items received per second, last 30 s

  let paused = false, pausedNew = 0;
  const rendered = new Map(); // cursor -> <li>
  let renderQueued = false;
  let version = 0;            // bumped on every put: a row re-renders when its item's version changes

  let panelSession = "", panelTimer = 0, panelTries = 0, panelSeq = 0;

  // ---------------------------------------------------------------- helpers
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null && text !== "") e.textContent = String(text);
    return e;
  }
  function sep() { return el("span", "sep", "·"); }
  function nf(n) { return Number(n || 0).toLocaleString("en-US"); }

  /** Shortens an id for display; the full id is in the title (hover). */
  function short(id) {
    id = String(id || "");
    // Generated ids (UUIDv7, timestamps) share their start; their ends tell
    // them apart.
    return id.length > 12 ? "…" + id.slice(-8) : id;
  }
  function sessionLink(s, extraCls) {
    const b = el("button", "sid" + (extraCls ? " " + extraCls : ""), short(s));
    b.type = "button";
    b.title = s + " — show this session";
    b.dataset.session = s;
    b.dataset.testid = "session-link";
    if (s === filters.session) b.classList.add("current");
    return b;
  }
  function ms(s) { const t = Date.parse(s); return isNaN(t) ? 0 : t; }

  function relTime(t, now) {
    const d = Math.max(0, (now - t) / 1000);
    if (d < 2) return "now";
    if (d < 60) return Math.floor(d) + "s ago";
    if (d < 3600) return Math.floor(d / 60) + "m ago";
    if (d < 86400) return Math.floor(d / 3600) + "h ago";
    return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
  function timeEl(iso) {
    const t = el("time");
    const v = ms(iso);
    if (!v) return t;
    t.dateTime = iso;
    t.dataset.ts = String(v);
    t.title = new Date(v).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
    t.textContent = relTime(v, Date.now());
    return t;
  }

  /** Go duration ("168h0m0s", "1m30.25s", "850ms") to milliseconds. */
  function goDuration(s) {
    if (!s || typeof s !== "string") return NaN;
    const unit = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ns: 1e-6 };
    let total = 0, matched = "";
    for (const m of s.matchAll(/([0-9.]+)(h|ms|m|s|us|µs|μs|ns)/g)) { total += parseFloat(m[1]) * unit[m[2]]; matched += m[0]; }
    return matched.length && matched.length === s.replace(/^-/, "").length ? (s[0] === "-" ? -total : total) : NaN;
  }
  function humanDuration(msv) {
    if (!isFinite(msv)) return "";
    const s = Math.round(msv / 1000);
    if (msv < 1000) return Math.round(msv) + " ms";
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    return d + (d === 1 ? " day" : " days") + (h ? " " + h + "h" : "");
  }
  const PLATFORM = { ios: "iOS", android: "Android", web: "Web", other: "Other" };
  const METHOD = { click_id: "click id", device_id: "device id", fingerprint: "fingerprint" };
  function host(u) { try { return new URL(u).host || u; } catch { return u; } }

  // ---------------------------------------------------------------- filters
  function readFilters(q) {
    const f = { kind: [], session: "", event: "", link: "", campaign: "", platform: "" };
    for (const k of (q.get("kind") || "").split(",")) if (KINDS.includes(k) && !f.kind.includes(k)) f.kind.push(k);
    for (const k of TEXT_FILTERS) f[k] = (q.get(k) || "").trim();
    return normFilters(f);
  }
  /** Canonical filters: kinds sorted (all three = none), empty fields dropped. */
  function normFilters(f) {
    const out = { kind: [], session: "", event: "", link: "", campaign: "", platform: "" };
    if (!f || typeof f !== "object") return out;
    let kinds = Array.isArray(f.kind) ? f.kind : typeof f.kind === "string" ? f.kind.split(",") : [];
    kinds = KINDS.filter((k) => kinds.includes(k));
    out.kind = kinds.length === KINDS.length ? [] : kinds;
    for (const k of TEXT_FILTERS) out[k] = typeof f[k] === "string" ? f[k].trim() : "";
    return out;
  }
  function filterKey(f) { return JSON.stringify(normFilters(f)); }
  function anyFilter(f) { return f.kind.length > 0 || TEXT_FILTERS.some((k) => f[k]); }
  function wireFilters(f) {
    const w = {};
    if (f.kind.length) w.kind = f.kind.slice();
    for (const k of TEXT_FILTERS) if (f[k]) w[k] = f[k];
    return w;
  }
  function addFilterParams(q, f) {
    if (f.kind.length) q.set("kind", f.kind.join(","));
    for (const k of TEXT_FILTERS) if (f[k]) q.set(k, f[k]);
  }

  /** Sessions of an item: its own and the ones a conversion or mark names. */
  function itemSessions(it) {
    const s = [it.session];
    if (it.hit) s.push(it.hit.session);
    if (it.event) s.push(it.event.session);
    if (it.conversion) s.push(it.conversion.hit_session, it.conversion.app_session);
    if (it.converted_with) s.push(it.converted_with.session);
    return s.filter(Boolean);
  }
  /**
   * Client-side filtering, used only while the server has not confirmed (by
   * echoing them in a snapshot) that it filters with the same filters: right
   * after a change, or with a server that does not filter at all.
   */
  function matches(it, f, sessions) {
    if (f.kind.length && !f.kind.includes(it.kind)) return false;
    if (f.event && !(it.event && it.event.name === f.event)) return false;
    if (f.link && (it.hit ? it.hit.link : it.conversion ? it.conversion.link : "") !== f.link) return false;
    if (f.campaign && (it.hit ? it.hit.campaign : it.conversion ? it.conversion.campaign : "") !== f.campaign) return false;
    if (f.platform && (it.hit ? it.hit.platform : it.event ? it.event.platform : "") !== f.platform) return false;
    if (f.session && !itemSessions(it).some((s) => sessions.has(s))) return false;
    return true;
  }
  function clientFiltering() { return anyFilter(filters) && serverKey !== filterKey(filters); }

  // ---------------------------------------------------------------- store
  function lastCursor() { return order.length ? order[order.length - 1] : 0; }
  function resumeCursor() { return Math.max(lastCursor(), serverCursor); }
  function noteCursor(c) { c = Number(c); if (Number.isSafeInteger(c) && c > serverCursor) serverCursor = c; }

  function notePair(a, b) {
    if (!a || !b || a === b) return;
    for (const [x, y] of [[a, b], [b, a]]) {
      if (!pairs.has(x)) pairs.set(x, new Set());
      pairs.get(x).add(y);
    }
  }
  function learn(it) {
    if (it.conversion) notePair(it.conversion.hit_session, it.conversion.app_session);
    if (it.converted_with) notePair(it.session || (it.event && it.event.session), it.converted_with.session);
    if (it.event && it.event.name) seen.event.add(it.event.name);
    const src = it.hit || it.conversion;
    if (src && src.link) seen.link.add(src.link);
    if (src && src.campaign) seen.campaign.add(src.campaign);
  }

  /** Inserts or replaces an item; returns true when it is new. */
  function put(it, fresh) {
    const c = Number(it.cursor);
    if (!Number.isSafeInteger(c) || c <= 0) return false;
    it.cursor = c;
    learn(it);
    const old = items.get(c);
    if (old) {
      old.it = it; old.v = ++version; old.updated = true;
      return false;
    }
    items.set(c, { it, v: ++version, fresh: fresh ? Date.now() : 0, updated: false });
    if (!order.length || c > order[order.length - 1]) {
      order.push(c);
    } else {
      let lo = 0, hi = order.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (order[mid] < c) lo = mid + 1; else hi = mid; }
      order.splice(lo, 0, c);
    }
    if (order.length > MAX_ITEMS) for (const d of order.splice(0, order.length - MAX_ITEMS)) items.delete(d);
    return true;
  }
  function replaceAll(list) {
    items.clear();
    order = [];
    for (const it of list || []) put(it, false);
  }

  // ---------------------------------------------------------------- frames
  function onFrame(f) {
    if (!f || typeof f !== "object") return;
    switch (f.type) {
      case "batch": // several item and update frames that were ready at once, in order
        for (const g of Array.isArray(f.frames) ? f.frames : []) {
          if (!g || g.type === "batch") continue;
          try { onFrame(g); } catch (err) { console.error("livetab: frame", g.type, err); }
        }
        return;
      case "snapshot": {
        const before = lastCursor();
        replaceAll(f.items);
        storeKey = filterKey(sentFilters);
        serverKey = f.filters ? filterKey(f.filters) : null;
        serverCursor = 0;
        noteCursor(f.cursor);
        if (typeof f.sampled === "boolean") sampled = f.sampled;
        setCounters(f.counters);
        if (paused) pausedNew += order.filter((c) => c > before).length;
        goodFrame();
        if (panelSession) loadTimeline(true);
        break;
      }
      case "resume": {
        let n = 0;
        for (const it of f.items || []) {
          if (put(it, true)) n++;
          touchPanel(it);
        }
        if (paused) pausedNew += n;
        if (f.filters) serverKey = filterKey(f.filters);
        if (typeof f.sampled === "boolean") sampled = f.sampled;
        noteCursor(f.cursor);
        const last = (f.items || [])[(f.items || []).length - 1];
        setCounters(f.counters || (last && last.counters));
        goodFrame();
        break;
      }
      case "skipped":
        notice(`The server no longer holds what came after #${nf(f.after)} (its oldest is #${nf(f.oldest)}), so the feed starts again from the newest items.`, false);
        break;
      case "item":
        if (!f.item) return;
        if (put(f.item, true)) {
          countArrival();
          if (paused) pausedNew++;
        }
        setCounters(f.item.counters);
        goodFrame();
        touchPanel(f.item);
        break;
      case "update":
        if (!f.item || !items.has(Number(f.item.cursor))) return; // scrolled away
        put(f.item, false);
        touchPanel(f.item);
        break;
      case "stats":
        statsSeen = true;
        noteCursor(f.cursor);
        onStats(f);
        break;
      case "token": // the server took a refreshed token
        tokenExpires = ms(f.expires) || tokenExpiry(token);
        tickToken();
        break;
      case "error":
        notice("The server says: " + (f.error || "error") + (f.code ? " (" + f.code + ")" : ""), true);
        break;
      default:
        return; // a frame this page does not know yet
    }
    scheduleRender();
  }

  function goodFrame() {
    attempt = 0;
    failedBeforeOpen = 0;
    if (!closedForGood) setState("live", "live");
  }

  /** Counter samples, one a second, for the "+N in the last minute" lines. */
  const samples = [];
  let openedAt = 0; // when the first counters arrived
  function tickCounters() {
    if (!openedAt) return;
    const now = Date.now();
    samples.push({ t: now, c: Object.assign({}, counters) });
    while (samples.length > 1 && samples[0].t < now - 60e3) samples.shift();
    const base = samples[0];
    const span = now - openedAt < 59e3 ? "since opened" : "in the last minute";
    for (const k of ["hits", "events", "conversions"]) {
      const d = Math.max(0, counters[k] - base.c[k]);
      const sub = $("c-" + k + "-sub");
      const text = "+" + nf(d) + " " + span;
      if (sub.textContent !== text) sub.textContent = text;
    }
  }

  function setCounters(c) {
    if (!c || typeof c !== "object") return;
    if (!openedAt) openedAt = Date.now();
    for (const k of ["hits", "events", "conversions"]) {
      const v = Number(c[k] || 0);
      if (v === counters[k]) continue;
      counters[k] = v;
      const e = $("c-" + k);
      e.textContent = nf(v);
      e.classList.remove("bump");
      void e.offsetWidth; // restart the animation
      e.classList.add("bump");
    }
  }

  function onStats(s) {
    lastStatsAt = Date.now();
    if (typeof s.sampled === "boolean") sampled = s.sampled;
    setCounters(s.counters);
    const showing = Number(s.showing_per_s), arriving = Number(s.arriving_per_s);
    const rate = $("rate");
    rate.replaceChildren();
    if (isFinite(arriving)) {
      rate.append(fmtRate(showing), el("small", "", " of " + fmtRate(arriving) + "/s"));
      $("rate-label").textContent = "Showing";
    } else {
      rate.append(fmtRate(showing), el("small", "", "/s"));
    }
    if (sampled) {
      const c = el("span", "chip-sampled", "sampled");
      c.title = "Traffic is high, so the page shows whole sessions picked at random. Use a filter to see every match.";
      rate.append(c);
    }
    const bits = [];
    if (Number(s.delay_ms) > 0) bits.push("delay " + humanDuration(Number(s.delay_ms)));
    if (isFinite(Number(s.lag))) bits.push("lag " + nf(s.lag));
    $("rate-sub").textContent = bits.join(" · ") || "live";
  }
  function fmtRate(v) {
    if (!isFinite(v)) return "–";
    return v >= 100 ? nf(Math.round(v)) : v >= 10 ? v.toFixed(0) : v.toFixed(1);
  }
  function rollArrivals() {
    const sec = Math.floor(Date.now() / 1000);
    if (sec - arrivals.sec >= 30) arrivals.bins.fill(0);
    else for (let s = arrivals.sec + 1; s <= sec; s++) arrivals.bins[s % 30] = 0;
    arrivals.sec = sec;
  }
  function countArrival() {
    rollArrivals();
    arrivals.bins[arrivals.sec % 30]++;
  }
  /** Without stats frames (an older server), the page measures its own rate. */
  function localRate() {
    if (Date.now() - lastStatsAt < 5000) return;
    rollArrivals();
    const rate = $("rate");
    rate.replaceChildren(fmtRate(arrivals.bins.reduce((a, b) => a + b, 0) / 30), el("small", "", "/s"));
    $("rate-label").textContent = "Receiving";
    $("rate-sub").textContent = "items per second, last 30 s";
  }

  // ---------------------------------------------------------------- socket
  let sentFilters = filters;

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectAt = 0;
    if (ws) { const old = ws; ws = null; old.close(1000, "reconnecting"); } // its handlers see ws !== it
    if (!account || !token) {
      closedForGood = true;
      setState("closed", "no account or token");
      notice("Open this page as /?account=ACCOUNT&token=TOKEN — `livetab dev` prints that address, `livetab token` makes a token.", true);
      return;
    }
    closedForGood = false;
    const q = new URLSearchParams({ account, token });
    addFilterParams(q, filters);
    // Resume only what was filled under the same filters: anything else
    // needs a fresh snapshot.
    if (resumeCursor() && storeKey === filterKey(filters)) q.set("cursor", String(resumeCursor()));
    sentFilters = filters;
    setState(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting…");
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    const sock = new WebSocket(proto + location.host + "/v1/live?" + q.toString());
    let opened = false;
    ws = sock;
    statsSeen = false;
    sock.onopen = () => {
      if (ws !== sock) return;
      opened = true;
      failedBeforeOpen = 0;
      lastFrameAt = Date.now();
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      try { onFrame(f); } catch (err) { console.error("livetab: frame", f && f.type, err); }
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      onClose(ev, opened);
    };
  }

  function closeText(ev) {
    if (ev.reason) return ev.reason;
    switch (ev.code) {
      case 1001: return "server going away";
      case 1006: return "connection lost";
      case 1011: return "server error";
      case 1012: return "server restarting";
      default: return "closed (" + ev.code + ")";
    }
  }

  function onClose(ev, opened) {
    const why = closeText(ev);
    if (/token/i.test(ev.reason || "")) {
      closedForGood = true;
      setState("closed", "closed: " + why);
      notice("The connection closed: " + why + ". Paste a new token to continue.", true);
      $("tokenform").hidden = false;
      return;
    }
    if (!opened) failedBeforeOpen++;
    lastReason = why;
    attempt++;
    if (failedBeforeOpen >= 2) diagnose();
    const base = ev.code === 1001 && attempt === 1 ? BACKOFF_MIN : Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (attempt - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    reconnectAt = Date.now() + delay;
    reconnectTimer = setTimeout(connect, delay);
    tickState();
  }

  /**
   * A browser tells a page nothing about why a WebSocket failed to open; ask
   * the same URL over plain HTTP, which answers 401/403/503 with a reason.
   */
  let diagnosing = false;
  async function diagnose() {
    if (diagnosing) return;
    diagnosing = true;
    try {
      const q = new URLSearchParams({ account, token });
      const res = await fetch("/v1/live?" + q.toString(), { cache: "no-store" });
      let reason = "";
      try { reason = (await res.json()).error || ""; } catch { /* not JSON */ }
      if (res.status === 401 || res.status === 403) {
        closedForGood = true;
        clearTimeout(reconnectTimer);
        reconnectAt = 0;
        setState("closed", "closed: " + (reason || (res.status === 401 ? "bad or expired token" : "token not for this account")));
        notice("The server refused this page's token (" + res.status + (reason ? ": " + reason : "") + "). Paste a new token to continue.", true);
        $("tokenform").hidden = false;
      } else if (res.status === 503) {
        lastReason = "server catching up" + (reason ? " (" + reason + ")" : "");
        tickState();
      }
    } catch {
      lastReason = "server unreachable";
      tickState();
    } finally {
      diagnosing = false;
    }
  }

  function retryNow() {
    if (closedForGood || !reconnectAt) return;
    attempt = Math.max(attempt - 1, 0);
    connect();
  }

  function setState(state, text, title) {
    const s = $("state");
    s.dataset.state = state;
    $("state-text").textContent = text;
    s.title = title || (state === "reconnecting" ? "Click to retry now" : "");
  }
  function tickState() {
    if (!reconnectAt || closedForGood) return;
    const left = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
    setState("reconnecting", (lastReason ? lastReason + " · " : "") + "reconnecting in " + left + "s");
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); return true; }
    return false;
  }

  function notice(text, bad) {
    const n = $("notice");
    n.replaceChildren(el("span", "", text));
    n.classList.toggle("bad", !!bad);
    const x = el("button", "btn", "Dismiss");
    x.type = "button";
    x.onclick = () => { n.hidden = true; };
    n.append(x);
    n.hidden = false;
  }

  // ---------------------------------------------------------------- rendering
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    // A timer, not requestAnimationFrame: a hidden tab still keeps its rows
    // current (at the browser's slower timer pace) and renders at once when
    // shown.
    setTimeout(() => { renderQueued = false; render(); }, 30);
  }

  function visible() {
    const out = [];
    const filter = clientFiltering();
    const sessions = new Set([filters.session, ...(pairs.get(filters.session) || [])]);
    for (let i = order.length - 1; i >= 0 && out.length < MAX_ROWS; i--) {
      const e = items.get(order[i]);
      if (!filter || matches(e.it, filters, sessions)) out.push(e);
    }
    return out;
  }

  function render() {
    renderPaused();
    $("clear").hidden = !anyFilter(filters);
    if (paused) return;
    const want = visible();
    const keep = new Set(want.map((e) => e.it.cursor));
    for (const [c, li] of rendered) if (!keep.has(c)) { li.remove(); rendered.delete(c); }
    const feed = $("feed");
    let prev = null;
    for (const e of want) {
      const c = e.it.cursor;
      let li = rendered.get(c);
      if (!li || li.dataset.v !== String(e.v)) {
        const fresh = row(e);
        if (li) li.replaceWith(fresh);
        li = fresh;
        rendered.set(c, li);
      }
      const at = prev ? prev.nextSibling : feed.firstChild;
      if (at !== li) feed.insertBefore(li, at);
      prev = li;
    }
    $("empty").hidden = want.length > 0;
    if (!want.length) {
      $("empty").replaceChildren(el("b", "", anyFilter(filters) ? "Nothing matches these filters yet" : "Waiting for traffic"),
        anyFilter(filters) ? "Matching items appear here as they arrive." : "New clicks, app events and conversions appear here the moment they happen.");
    }
    const foot = $("feed-foot");
    const kept = order.length;
    foot.hidden = kept <= MAX_ROWS;
    foot.textContent = `Showing the newest ${MAX_ROWS} of ${nf(kept)} items this page holds.`;
    $("feed-info").textContent = want.length ? nf(want.length) + (want.length === 1 ? " item" : " items") + (clientFiltering() || anyFilter(filters) ? " matching" : "") : "";
  }

  function renderPaused() {
    const b = $("paused");
    b.hidden = !paused;
    if (paused) b.textContent = pausedNew ? `${nf(pausedNew)} new while paused — resume` : "Paused — resume";
    const p = $("pause");
    p.setAttribute("aria-pressed", String(paused));
    p.textContent = paused ? "Resume" : "Pause";
  }

  function row(e) {
    const it = e.it;
    const li = el("li", "row k-" + (it.kind || "other"));
    li.dataset.testid = "row";
    li.dataset.cursor = String(it.cursor);
    li.dataset.kind = it.kind || "";
    li.dataset.session = it.session || "";
    li.dataset.v = String(e.v);
    // Only what just arrived fades in: rows shown late (after a filter
    // change or a pause) appear at once.
    if (e.fresh && Date.now() - e.fresh < 1500) li.classList.add("fresh");
    else if (e.updated) li.classList.add("updated");
    e.fresh = 0;
    e.updated = false;

    const when = el("div", "when");
    when.append(timeEl(it.received_at));
    li.append(when);
    li.append(el("span", "kind " + (it.kind || ""), it.kind || "?"));

    const what = el("div", "what");
    const title = el("div", "title");
    const meta = el("div", "meta");
    describe(it, title, meta);
    what.append(title);
    if (meta.childNodes.length) what.append(meta);
    li.append(what);

    const side = el("div", "side");
    if (it.converted_with) side.append(badge(it.converted_with));
    side.append(el("span", "cursor", "#" + it.cursor));
    li.append(side);
    return li;
  }

  function badge(cw) {
    const b = el("span", "badge");
    b.dataset.testid = "converted-badge";
    b.dataset.session = cw.session || "";
    b.dataset.method = cw.method || "";
    b.title = "Converted" + (cw.at ? " " + new Date(ms(cw.at)).toLocaleString() : "") + " — paired with the hit session " + (cw.session || "?") + " by " + (METHOD[cw.method] || cw.method || "?");
    b.insertAdjacentHTML("beforeend", '<svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true"><path d="M2.5 6.3l2.3 2.3 4.7-5" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>');
    b.append("Converted with ");
    if (cw.session) b.append(sessionLink(cw.session)); else b.append("?");
    if (cw.method) b.append(el("span", "method", "· " + (METHOD[cw.method] || cw.method)));
    return b;
  }

  /** Fills a row's (or timeline entry's) title and meta line for its kind. */
  function describe(it, title, meta, opts) {
    const inTimeline = opts && opts.timeline;
    const add = (parent, ...nodes) => {
      for (const n of nodes) {
        if (n === null || n === undefined || n === "") continue;
        if (parent.childNodes.length) parent.append(sep());
        parent.append(n);
      }
    };
    const tag = (t) => el("span", "tag", t);
    if (it.hit || it.kind === "hit") {
      const h = it.hit || {};
      title.append("Click on ", el("b", "", h.link || "a link"));
      if (h.campaign) title.append(sep(), tag(h.campaign));
      if (h.platform) title.append(sep(), tag(PLATFORM[h.platform] || h.platform));
      if (!inTimeline) add(meta, sessionLink(h.session || it.session));
      if (h.referrer) add(meta, "from " + host(h.referrer));
      if (h.destination) add(meta, "to " + host(h.destination));
      if (h.click_id) add(meta, clickId(h.click_id));
    } else if (it.event || it.kind === "event") {
      const ev = it.event || {};
      title.append(el("b", "", ev.name || "event"));
      if (ev.platform) title.append(sep(), tag(PLATFORM[ev.platform] || ev.platform));
      if (ev.app_version) title.append(sep(), tag("v" + ev.app_version));
      if (!inTimeline) add(meta, sessionLink(ev.session || it.session));
      if (ev.click_id) add(meta, clickId(ev.click_id));
      const p = ev.params ? Object.keys(ev.params).length : 0;
      if (p) add(meta, p + (p === 1 ? " param" : " params"));
    } else if (it.conversion || it.kind === "conversion") {
      const c = it.conversion || {};
      title.append(el("b", "", "Conversion"), sep(), tag("by " + (METHOD[c.method] || c.method || "?")));
      if (c.link) title.append(sep(), tag(c.link));
      if (c.campaign) title.append(sep(), tag(c.campaign));
      const pair = el("span");
      pair.append(c.hit_session ? sessionLink(c.hit_session) : "?", " → ", c.app_session ? sessionLink(c.app_session) : "?");
      add(meta, pair);
      const d = goDuration(c.hit_to_install);
      if (isFinite(d)) add(meta, "installed " + humanDuration(d) + " after the click");
    } else {
      title.append(el("b", "", it.kind || "item"));
    }
  }
  function clickId(id) {
    const s = el("span", "mono", "click " + short(id));
    s.title = "click id " + id;
    return s;
  }

  function tickTimes() {
    const now = Date.now();
    for (const t of document.querySelectorAll("time[data-ts]")) {
      const v = relTime(Number(t.dataset.ts), now);
      if (t.textContent !== v) t.textContent = v;
    }
  }

  // ---------------------------------------------------------------- filters UI
  const form = $("filters");

  function formFilters() {
    const f = { kind: [], session: "", event: "", link: "", campaign: "", platform: "" };
    for (const c of form.querySelectorAll("input[name=kind]")) if (c.checked) f.kind.push(c.value);
    if (!f.kind.length) f.kind = KINDS.slice(); // none checked reads as all
    for (const k of TEXT_FILTERS) f[k] = form.elements[k].value.trim();
    return normFilters(f);
  }
  function showFilters(f) {
    for (const c of form.querySelectorAll("input[name=kind]")) c.checked = !f.kind.length || f.kind.includes(c.value);
    for (const k of TEXT_FILTERS) {
      form.elements[k].value = f[k];
      form.elements[k].classList.toggle("active", !!f[k]);
    }
  }

  /** Applies new filters: to the URL, to the open socket, and to the panel. */
  function applyFilters(f) {
    f = normFilters(f);
    if (filterKey(f) === filterKey(filters)) return;
    const sessionChanged = f.session !== filters.session;
    filters = f;
    showFilters(f);
    const u = new URL(location.href);
    for (const k of ["kind", ...TEXT_FILTERS, "cursor"]) u.searchParams.delete(k);
    addFilterParams(u.searchParams, f);
    history.replaceState(null, "", u);
    // No cursor: the server answers with a snapshot for the new filters.
    if (send({ type: "subscribe", filters: wireFilters(f) })) sentFilters = f;
    if (sessionChanged) {
      if (f.session) openPanel(f.session); else closePanel();
      for (const b of document.querySelectorAll("button.sid")) b.classList.toggle("current", b.dataset.session === f.session);
    }
    scheduleRender();
  }

  let typing = 0;
  form.addEventListener("input", (ev) => {
    if (ev.target.name === "kind" || ev.target.tagName === "SELECT") { applyFilters(formFilters()); return; }
    clearTimeout(typing);
    typing = setTimeout(() => applyFilters(formFilters()), 450);
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); clearTimeout(typing); applyFilters(formFilters()); });
  form.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && ev.target.name && TEXT_FILTERS.includes(ev.target.name)) { ev.target.value = ""; applyFilters(formFilters()); }
  });
  $("clear").addEventListener("click", () => applyFilters({}));

  function selectSession(s) {
    if (!s) return;
    const f = Object.assign({}, filters, { session: s });
    if (f.session === filters.session) { openPanel(s); return; }
    applyFilters(f);
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest && ev.target.closest("button.sid");
    if (b && b.dataset.session) { ev.preventDefault(); selectSession(b.dataset.session); }
  });

  function togglePause() {
    paused = !paused;
    if (!paused) {
      pausedNew = 0;
      for (const li of rendered.values()) li.remove(); // rebuild in one go
      rendered.clear();
    }
    render();
  }
  $("pause").addEventListener("click", togglePause);
  $("paused").addEventListener("click", togglePause);
  $("state").addEventListener("click", retryNow);

  function fillDatalists() {
    for (const k of ["event", "link", "campaign"]) {
      const dl = $("dl-" + k);
      if (dl.childElementCount === seen[k].size) continue;
      dl.replaceChildren(...[...seen[k]].sort().slice(0, 200).map((v) => { const o = el("option"); o.value = v; return o; }));
    }
  }

  // ---------------------------------------------------------------- timeline
  function openPanel(s) {
    panelSession = s;
    panelTries = 0;
    const p = $("panel");
    p.hidden = false;
    p.dataset.session = s;
    delete p.dataset.pairedSession;
    $("layout").classList.add("with-panel");
    $("panel-session").textContent = s;
    $("panel-pair").replaceChildren();
    $("panel-conv").replaceChildren();
    $("panel-entries").replaceChildren();
    $("panel-msg").textContent = "Loading the timeline…";
    $("panel-msg").hidden = false;
    loadTimeline(false);
  }
  function closePanel() {
    panelSession = "";
    clearTimeout(panelTimer);
    $("panel").hidden = true;
    $("layout").classList.remove("with-panel");
  }
  $("panel-close").addEventListener("click", () => applyFilters(Object.assign({}, filters, { session: "" })));

  /** New items of the shown session (or its pair) refresh the timeline. */
  function touchPanel(it) {
    if (!panelSession) return;
    const want = new Set([panelSession, ...(pairs.get(panelSession) || [])]);
    if (itemSessions(it).some((s) => want.has(s))) {
      clearTimeout(panelTimer);
      panelTries = 0;
      panelTimer = setTimeout(() => loadTimeline(true), 400);
    }
  }

  async function loadTimeline(quiet) {
    const s = panelSession;
    if (!s) return;
    clearTimeout(panelTimer);
    const seq = ++panelSeq;
    let res, body = null;
    try {
      const q = new URLSearchParams({ account, session: s });
      res = await fetch("/v1/timeline?" + q.toString(), { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      try { body = await res.json(); } catch { body = null; }
    } catch {
      if (seq === panelSeq && !quiet) $("panel-msg").textContent = "Cannot reach the server.";
      return retryTimeline();
    }
    if (seq !== panelSeq || s !== panelSession) return;
    if (res.status === 404) {
      $("panel-msg").hidden = false;
      $("panel-msg").textContent = "No timeline for this session yet — it appears as soon as the session's first hit or event is processed.";
      $("panel-entries").replaceChildren();
      return retryTimeline();
    }
    if (!res.ok || !body) {
      $("panel-msg").hidden = false;
      $("panel-msg").textContent = "The timeline could not be loaded: " + ((body && body.error) || res.status);
      return retryTimeline();
    }
    renderTimeline(body);
    // The sessions processor may not have applied a conversion the feed
    // already shows: ask again a few times until the pairing is there.
    if (!body.paired_session && pairs.has(s)) retryTimeline();
  }
  function retryTimeline() {
    if (!panelSession || panelTries >= 8) return;
    const delay = Math.min(8000, 400 * 2 ** panelTries++);
    clearTimeout(panelTimer);
    panelTimer = setTimeout(() => loadTimeline(true), delay);
  }

  function renderTimeline(tl) {
    const s = tl.session || panelSession;
    const p = $("panel");
    const paired = tl.paired_session || "";
    if (paired) { p.dataset.pairedSession = paired; notePair(s, paired); } else delete p.dataset.pairedSession;

    const pair = $("panel-pair");
    pair.replaceChildren();
    if (paired) pair.append("Paired with ", sessionLink(paired));
    else pair.append("Not paired with another session yet");

    const conv = $("panel-conv");
    conv.replaceChildren();
    if (tl.conversion) conv.append(conversionCard(tl.conversion));

    const list = $("panel-entries");
    list.replaceChildren();
    const entries = Array.isArray(tl.entries) ? tl.entries : [];
    for (const e of entries) {
      const li = el("li", "k-" + (e.kind || ""));
      const own = e.session === s;
      li.dataset.testid = "timeline-entry";
      li.dataset.session = e.session || "";
      li.dataset.kind = e.kind || "";
      li.dataset.role = own ? "self" : "paired";
      if (!own) li.classList.add("paired");
      const l1 = el("div", "line1");
      const what = el("span", "what");
      describe({ kind: e.kind, hit: e.hit, event: e.event, conversion: e.conversion }, what, el("span"), { timeline: true });
      l1.append(what, timeEl(e.time));
      const l2 = el("div", "line2");
      const who = el("span", "who " + (own ? "self" : "paired"), own ? "this session" : "paired session");
      who.title = e.session || "";
      l2.append(who);
      if (!own && e.session) l2.append(sessionLink(e.session));
      const x = e.hit || e.event;
      if (x && x.click_id) l2.append(sep(), clickId(x.click_id));
      li.append(l1, l2);
      list.append(li);
    }
    const msg = $("panel-msg");
    msg.hidden = entries.length > 0;
    msg.textContent = entries.length ? "" : "This session has no entries.";
  }

  function conversionCard(c) {
    const box = el("div", "conv");
    box.dataset.testid = "timeline-conversion";
    box.dataset.method = c.method || "";
    const h = el("div", "h");
    h.insertAdjacentHTML("beforeend", '<svg width="14" height="14" viewBox="0 0 12 12" aria-hidden="true"><path d="M2.5 6.3l2.3 2.3 4.7-5" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>');
    h.append("Converted by " + (METHOD[c.method] || c.method || "?"));
    box.append(h);
    const dl = el("dl");
    const row = (k, v) => { if (v === "" || v === undefined || v === null) return; dl.append(el("dt", "", k)); const dd = el("dd"); dd.append(v); dl.append(dd); };
    const w = goDuration(c.window);
    row("Window", isFinite(w) ? humanDuration(w) : c.window);
    const hti = goDuration(c.hit_to_install);
    row("Click → install", isFinite(hti) ? humanDuration(hti) : "");
    row("Link", c.link);
    row("Campaign", c.campaign);
    if (c.candidates) row("Candidates", String(c.candidates));
    if (c.time) { const t = timeEl(c.time); row("Converted", t); }
    if (c.click_id) row("Click id", clickId(c.click_id));
    box.append(dl);
    return box;
  }

  // ---------------------------------------------------------------- token
  function tokenExpiry(t) {
    try {
      const b = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const exp = JSON.parse(atob(b + "===".slice((b.length + 3) % 4))).exp;
      return typeof exp === "number" ? exp * 1000 : 0;
    } catch { return 0; }
  }
  let tokenExpires = tokenExpiry(token);
  function tickToken() {
    const exp = tokenExpires;
    const w = $("tokwarn");
    if (!exp) { w.hidden = true; return; }
    const left = exp - Date.now();
    w.hidden = left > 15 * 60e3;
    w.textContent = left > 0 ? "token expires in " + humanDuration(left) : "token expired";
    if (left < 15 * 60e3 && !closedForGood) $("tokenform").hidden = false;
  }
  $("tokenform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = ev.target.elements.token.value.trim();
    if (!t) return;
    token = t;
    tokenExpires = tokenExpiry(t);
    ev.target.elements.token.value = "";
    $("tokenform").hidden = true;
    $("notice").hidden = true;
    const u = new URL(location.href);
    u.searchParams.set("token", t);
    history.replaceState(null, "", u);
    tickToken();
    // An open socket takes the new token in place; a closed one reconnects.
    if (!send({ type: "token", token: t })) { attempt = 0; connect(); }
    if (panelSession) loadTimeline(true);
  });

  // ---------------------------------------------------------------- start
  $("account").replaceChildren(...(account ? ["account ", el("b", "", account)] : []));
  document.title = (account ? account + " · " : "") + "livetab live";
  showFilters(filters);
  setInterval(() => {
    tickTimes();
    tickState();
    tickToken();
    localRate();
    tickCounters();
    fillDatalists();
    // A server that sends stats every second and has gone quiet is gone,
    // even if the TCP connection has not noticed yet.
    if (ws && statsSeen && Date.now() - lastFrameAt > STALE_MS) ws.close(4000, "no frame for 10s");
  }, 1000);
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) retryNow(); });
  if (filters.session) openPanel(filters.session);
  connect();
  render();
})();
