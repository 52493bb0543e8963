// The status page: polls /api/state and draws it; actions POST to /api/*.
// Everything from the agent or a peer is set as text, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  // Page loads in this tab (sessionStorage survives a reload): the tests
  // check that live updates never needed one.
  const loads = (parseInt(sessionStorage.getItem("mmogit-loads") || "0", 10) || 0) + 1;
  sessionStorage.setItem("mmogit-loads", String(loads));
  document.body.dataset.loads = String(loads);
  $("loads").textContent = String(loads);

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  function say(text, bad) {
    const p = el("p", bad ? { class: "error" } : {}, text);
    $("messages").append(p);
    setTimeout(() => p.remove(), 12000);
  }
  function ago(t, now) {
    if (!t) return "never";
    const s = Math.max(0, Math.round((now - new Date(t)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function roles(p) {
    if (p.read && p.write) return "read, write";
    if (p.read) return "read";
    if (p.write) return "write";
    return "stranger";
  }

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
    });
    const v = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(v.error || r.statusText);
    return v;
  }

  let qrFor = "";
  function drawAgent(st, now) {
    const a = st.agent;
    if (!a) {
      $("agent-line").textContent = "agent not running: " + (st.agent_error || "");
      $("agent-line").className = "error";
      return;
    }
    $("agent-line").className = "";
    $("agent-line").textContent = `agent pid ${a.pid}, ${a.peers_connected} peer(s) connected, ${a.peers_known} known` + (a.error ? `; last error: ${a.error}` : "");
    $("onion").textContent = a.onion_address;
    $("pubkey").textContent = a.pubkey;
    $("peerid").textContent = a.peer_id;
    if (qrFor !== a.onion_address) {
      qrFor = a.onion_address;
      $("qr").src = "/qr.svg?for=" + encodeURIComponent(a.onion_address);
    }
    $("transport").textContent = a.transport;
    const usesTor = a.transport !== "direct" || a.bootstrap_progress > 0;
    const bar = $("bootstrap");
    bar.value = a.bootstrap_progress;
    bar.setAttribute("aria-valuetext", `${a.bootstrap_progress} percent: ${a.bootstrap_summary || ""}`);
    $("bootstrap-text").textContent = usesTor ? `${a.bootstrap_progress}% ${a.bootstrap_summary || ""}` + (a.bootstrap_warning ? ` (warning: ${a.bootstrap_warning})` : "") : "tor not used (direct mode)";
    $("published").textContent = a.published ? "published" : "not published";
    $("published").className = a.published ? "published" : "";
    $("published-since").textContent = a.published && a.published_at ? `since ${new Date(a.published_at).toLocaleString()} (${ago(a.published_at, now)})` : "";
    $("tor-extra").textContent = a.tor_version ? `tor ${a.tor_version}, restarts ${a.tor_restarts}, PoW defenses ${a.pow ? "on" : "off"}` : "";
    $("advertising").textContent = (a.services && a.services.length) ? a.services.join(", ") : "nothing";
  }

  function drawPeers(st, now) {
    const tb = $("peers").tBodies[0];
    const rows = [];
    for (const p of st.peers) {
      const c = p.last_sync_counts;
      const counts = c ? `${c.received} received, ${c.sent} sent, ${c.rejected} rejected, ${c.refused} refused` : "–";
      const trust = el("button", { type: "button", "data-peer": p.peer_id }, (p.read || p.write) ? "untrust" : "trust");
      trust.addEventListener("click", () => act(trust, "/api/trust", { peer: p.peer_id, remove: p.read || p.write }, (r) => r.removed ? `${r.onion_address} is a stranger again` : `trusted ${r.onion_address}: ${roles(r)}`));
      const sync = el("button", { type: "button" }, "sync");
      sync.addEventListener("click", () => act(sync, "/api/sync", { peer: p.onion_address || p.peer_id }, syncText));
      rows.push(el("tr", { "data-peer-id": p.peer_id },
        el("td", {}, el("code", {}, p.alias ? `${p.alias} (${p.onion_address || p.peer_id})` : (p.onion_address || p.peer_id)), el("br"), el("small", { class: "muted" }, p.peer_id)),
        el("td", { class: p.connected ? "connected transport" : "transport" }, p.transport + (p.connected ? " · connected" : " · not connected")),
        el("td", {}, p.last_sync ? ago(p.last_sync, now) : "never"),
        el("td", { class: "counts" }, counts),
        el("td", { class: "roles" }, roles(p)),
        el("td", {}, sync, " ", trust)));
    }
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted" }, st.peers_error || "no peers yet: connect to one, or discover")));
    tb.replaceChildren(...rows);
    $("peers-count").textContent = `(${st.peers.filter((p) => p.connected).length} connected of ${st.peers.length})`;
  }

  function drawDiscovery(st, now) {
    const out = [];
    for (const d of st.discovery) {
      const h = el("h3", {}, `${d.service} `, el("span", { class: "count" }, d.running ? "(looking…)" : d.at ? `(${d.ads.length} found, looked ${ago(d.at, now)})` : "(not looked yet)"));
      const ul = el("ul", { "data-service": d.service });
      for (const ad of d.ads) {
        const exp = Math.round((new Date(ad.expires) - now) / 1000);
        const connect = el("button", { type: "button" }, "connect");
        connect.addEventListener("click", () => act(connect, "/api/connect", { target: ad.onion_address }, connectText));
        ul.append(el("li", { class: "ad", "data-onion": ad.onion_address },
          el("code", {}, ad.onion_address), ` ${ad.services.join(", ")} · ad age ${ago(ad.timestamp, now).replace(" ago", "")} · expires in ${Math.max(0, Math.round(exp / 60))} min `, connect));
      }
      if (d.error) ul.append(el("li", { class: "error" }, d.error));
      out.push(h, ul);
    }
    $("found").replaceChildren(...out);
  }

  function drawMemories(st) {
    const m = st.memories;
    const items = m.items.map((x) => el("li", { "data-id": x.id },
      el("span", { class: x.valid ? "badge valid" : "badge invalid", title: x.error || "signature verified" }, x.valid ? "valid" : "INVALID"),
      el("span", { class: "badge" + (x.readable ? "" : " muted") }, x.encrypted ? (x.readable ? "encrypted, readable" : "encrypted, not readable") : "plain"),
      el("span", { class: "badge" }, x.type), " ",
      el("small", { class: "muted" }, `${x.timestamp} by ${x.author_label}`), el("br"),
      el("span", { class: "text" }, x.text)));
    if (!items.length) items.push(el("li", { class: "muted" }, m.error || (m.held ? "nothing matches" : "no memories yet")));
    $("memories").replaceChildren(...items);
    $("memories-count").textContent = `(${m.total} shown of ${m.held})`;
  }

  function syncText(res) {
    if (!res.length) return "sync: nobody to sync with (trust a peer first)";
    return res.map((r) => r.error ? `sync ${r.peer_id}: ${r.error}` : `sync ${r.peer_id}: received ${r.received}, sent ${r.sent}, rejected ${r.rejected}, refused ${r.refused}`).join("; ");
  }
  function connectText(r) { return `connected to ${r.peer_id} via ${r.transport} in ${Math.round(r.connect_ms)} ms`; }

  async function act(button, path, body, text) {
    button.disabled = true;
    try {
      say(text(await post(path, body)));
      poll(true);
    } catch (e) {
      say(`${path.replace("/api/", "")}: ${e.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  let timer = null;
  let inflight = false;
  async function poll(now) {
    if (inflight) return;
    clearTimeout(timer);
    inflight = true;
    try {
      const r = await fetch("/api/state?q=" + encodeURIComponent($("search").value), { credentials: "same-origin" });
      if (r.status === 401) {
        $("agent-line").textContent = "session ended: open the URL `mmogit ui` prints";
        return;
      }
      const st = await r.json();
      const t = new Date(st.now);
      drawAgent(st, t);
      drawPeers(st, t);
      drawDiscovery(st, t);
      drawMemories(st);
      $("updated").textContent = t.toLocaleTimeString();
      $("updated").setAttribute("datetime", st.now);
      document.body.dataset.polls = String((parseInt(document.body.dataset.polls || "0", 10)) + 1);
    } catch (e) {
      $("agent-line").textContent = "status page not answering: " + e.message;
    } finally {
      inflight = false;
      timer = setTimeout(poll, 1500);
    }
  }

  $("copy-onion").addEventListener("click", () => {
    navigator.clipboard.writeText($("onion").textContent).then(() => say("onion address copied"), (e) => say("copy: " + e.message, true));
  });
  $("sync-now").addEventListener("click", (e) => act(e.target, "/api/sync", {}, syncText));
  $("connect-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, "/api/connect", { target: $("connect-target").value }, connectText);
  });
  $("advertise-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, "/api/advertise", { services: $("advertise-services").value }, (ad) => `advertising ${ad.services.join(", ")} (seq ${ad.seq})`);
  });
  $("discover-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, "/api/discover", { service: $("discover-service").value }, (r) => `looking for agents offering ${r.watching}`);
  });
  $("invite-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, "/api/invite", { read: $("invite-read").checked, write: $("invite-write").checked, expires: $("invite-expires").value }, (r) => {
      $("invite-out").textContent = r.invite;
      return `invite created (one use, until ${new Date(r.expires).toLocaleString()})` + (r.note ? `; note: ${r.note}` : "");
    });
  });
  let searchTimer = null;
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => poll(true), 250); });
  poll(true);
})();
