// The Lanyard approval app (/approve, templates/approve.html). It keeps, per
// paired account, a non-extractable ECDSA P-256 key made with WebCrypto in
// IndexedDB, and signs every answer with it: the request, the number the
// officer typed, the decision and the request's server challenge, in the
// exact form of flows/approval's Message. Lanyard keeps only the public key.
//
// Pairing: the one-time link (#pair=TOKEN, from the computer's QR code, or
// pasted) registers a new key; the officer types the number the computer
// shows and chooses Yes. Then, while the app is open, it asks Lanyard every
// 2 s for requests waiting (a signed list call), and at once when a Web Push
// notification (sw.js) wakes it. No third-party script; the CSP is
// script-src 'self'.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const app = $("app");
  if (!app) return;

  const PREFIX = "lanyard-approval/1";
  const answerMessage = (request, number, decision, challenge) =>
    [PREFIX, "answer", "request=" + request, "number=" + number, "decision=" + decision, "challenge=" + challenge].join("\n");
  const listMessage = (device, at) => [PREFIX, "list", "device=" + device, "at=" + at].join("\n");
  const reportMessage = (request, challenge) => [PREFIX, "report", "request=" + request, "challenge=" + challenge].join("\n");

  const b64 = {
    enc(buf) {
      let s = "";
      for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
      return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
    dec(str) {
      const s = atob(str.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((str.length + 3) % 4));
      return Uint8Array.from(s, (c) => c.charCodeAt(0));
    },
  };

  // --- The keys, in IndexedDB --------------------------------------------

  const DB = "lanyard-approve";
  const STORE = "devices";
  function openDB() {
    return new Promise((resolve, reject) => {
      const r = indexedDB.open(DB, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE, {keyPath: "device"});
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  async function withStore(mode, fn) {
    const db = await openDB();
    return new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      let out;
      const req = fn(t.objectStore(STORE));
      if (req) req.onsuccess = () => { out = req.result; };
      t.oncomplete = () => { db.close(); resolve(out); };
      t.onerror = t.onabort = () => { db.close(); reject(t.error); };
    });
  }
  const devices = () => withStore("readonly", (s) => s.getAll());
  const saveDevice = (d) => withStore("readwrite", (s) => s.put(d));
  const dropDevice = (id) => withStore("readwrite", (s) => s.delete(id));

  async function sign(key, text) {
    const sig = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, key, new TextEncoder().encode(text));
    return b64.enc(sig);
  }

  async function api(path, body) {
    let resp;
    try {
      resp = await fetch(path, {
        method: "POST",
        credentials: "omit",
        headers: {"Content-Type": "application/json", Accept: "application/json"},
        body: JSON.stringify(body),
      });
    } catch (e) {
      return {ok: false, status: 0, data: {error: "Lanyard cannot be reached. Check the phone's connection and try again."}};
    }
    let data = {};
    try {
      data = await resp.json();
    } catch (e) {
      data = {error: "Lanyard answered something unexpected. Try again."};
    }
    return {ok: resp.ok, status: resp.status, data};
  }

  // --- What the screen shows ----------------------------------------------

  const sections = ["app-unsupported", "app-unpaired", "app-idle", "app-request", "app-denied", "app-done"];
  let screen = "";
  function show(id, focus) {
    screen = id;
    for (const s of sections) $(s).hidden = s !== id;
    if (focus) {
      const el = $(focus);
      if (el) el.focus();
    }
  }
  function say(text) {
    $("app-status").textContent = text || "";
  }
  function fieldError(input, errorId, text) {
    const err = $(errorId);
    const field = input.closest(".field");
    err.hidden = !text;
    err.textContent = text || "";
    field.classList.toggle("field-error", !!text);
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  function done(text) {
    $("done-message").textContent = text;
    say("");
    show("app-done", "done-ok");
  }

  // current is the request on screen: {kind, req, key, device}.
  let current = null;
  let denied = null;

  function showRequest(c) {
    current = c;
    const r = c.req;
    $("request-title").textContent = r.kind === "pairing"
      ? "Pair this phone with " + r.application + "?"
      : "Sign in to " + r.application + "?";
    $("request-application").textContent = r.application;
    $("request-account").textContent = r.account;
    $("request-time").textContent = r.time;
    $("request-browser").textContent = r.browser;
    $("request-address").textContent = r.address;
    const input = $("number");
    input.value = "";
    fieldError(input, "number-error", "");
    say(r.kind === "pairing" ? "Type the number your computer shows." : "A sign-in is waiting for your approval.");
    show("app-request", "number");
  }

  // --- Push ----------------------------------------------------------------

  let registration = null;
  function registerWorker() {
    if (!("serviceWorker" in navigator)) return;
    navigator.serviceWorker.register("/approve/sw.js", {scope: "/approve"}).then((r) => {
      registration = r;
    }).catch(() => {});
    navigator.serviceWorker.addEventListener("message", (e) => {
      if (e.data && e.data.type === "refresh") refresh();
    });
  }

  function within(ms, promise) {
    return Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(null), ms))]);
  }

  // currentPush is this browser's push subscription, if it has one.
  async function currentPush() {
    try {
      if (!registration || !registration.pushManager) return null;
      const sub = await within(2000, registration.pushManager.getSubscription());
      return sub ? subscriptionJSON(sub) : null;
    } catch (e) {
      return null;
    }
  }
  function subscriptionJSON(sub) {
    const j = sub.toJSON();
    return {endpoint: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth};
  }

  // subscribe asks for permission (in a click: browsers want a gesture)
  // and subscribes with Lanyard's VAPID key. null when the browser cannot or
  // the officer said no: the app then works while open.
  async function subscribe() {
    try {
      if (!("PushManager" in window) || !window.Notification || !("serviceWorker" in navigator)) return null;
      let perm = Notification.permission;
      if (perm === "default") perm = await within(15000, Notification.requestPermission());
      if (perm !== "granted") return null;
      const reg = registration || await within(4000, navigator.serviceWorker.ready);
      if (!reg) return null;
      let sub = await within(4000, reg.pushManager.getSubscription());
      if (!sub) {
        sub = await within(8000, reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: b64.dec(app.dataset.vapidKey)}));
      }
      return sub ? subscriptionJSON(sub) : null;
    } catch (e) {
      return null;
    }
  }

  function deviceName() {
    const ua = navigator.userAgent;
    for (const [token, name] of [["iPhone", "iPhone"], ["iPad", "iPad"], ["Android", "Android phone"], ["Windows", "Windows"], ["Mac OS X", "Mac"], ["Linux", "Linux"]]) {
      if (ua.includes(token)) return name;
    }
    return "Phone";
  }

  // --- Pairing -------------------------------------------------------------

  async function pair(token) {
    say("Pairing this phone…");
    let keys;
    try {
      keys = await crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign", "verify"]);
    } catch (e) {
      show("app-unsupported");
      return;
    }
    const spki = await crypto.subtle.exportKey("spki", keys.publicKey);
    const r = await api("/approve/api/pair", {token, public_key: b64.enc(spki)});
    if (!r.ok) {
      say(r.data.error);
      const list = await devices();
      show(list.length ? "app-idle" : "app-unpaired");
      return;
    }
    showRequest({kind: "pairing", req: r.data, key: keys.privateKey});
  }

  $("paste-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("pairing-input");
    const m = input.value.trim().match(/#pair=([A-Za-z0-9_-]{43})$/);
    if (!m) {
      fieldError(input, "pairing-input-error", "Paste the whole pairing link your computer shows. It ends with #pair= and a long code.");
      input.focus();
      return;
    }
    fieldError(input, "pairing-input-error", "");
    input.value = "";
    pair(m[1]);
  });

  // --- Answering -----------------------------------------------------------

  let answering = false;
  async function answer(decision) {
    const c = current;
    if (!c || answering) return;
    const input = $("number");
    const number = decision === "approve" ? input.value.trim() : "";
    if (decision === "approve" && !/^[0-9]{2}$/.test(number)) {
      fieldError(input, "number-error", "Enter the two-digit number shown in your browser.");
      input.focus();
      return;
    }
    answering = true;
    try {
      const body = {request: c.req.id, number, decision};
      if (c.kind === "pairing") {
        body.name = deviceName();
        if (decision === "approve") body.push = await subscribe();
      } else {
        body.device = c.device.device;
      }
      body.signature = await sign(c.key, answerMessage(c.req.id, number, decision, c.req.challenge));
      const r = await api("/approve/api/answer", body);
      if (r.ok && r.data.state === "approved") {
        current = null;
        if (c.kind === "pairing") {
          await saveDevice({device: r.data.device, account: r.data.account, name: r.data.name, key: c.key, paired: Date.now()});
          done("This phone is paired" + (r.data.push ? "" : " (without notifications: open this app when you sign in)") +
            ". Go back to your computer: it continues by itself.");
        } else {
          done("Approved. Go back to your computer: the sign-in continues.");
        }
        return;
      }
      if (r.ok && r.data.state === "denied") {
        current = null;
        if (r.data.report) {
          denied = c;
          say("");
          show("app-denied", "report");
        } else {
          done("Pairing refused. Nothing was paired.");
        }
        return;
      }
      if (r.status === 422 && r.data.state === "number") {
        const left = r.data.left;
        fieldError(input, "number-error", r.data.error + " " + (left === 1 ? "1 try left." : left + " tries left."));
        input.value = "";
        input.focus();
        return;
      }
      if (r.data.unpaired && c.device) await dropDevice(c.device.device);
      current = null;
      done(r.data.error || "Something went wrong. Try again.");
    } finally {
      answering = false;
    }
  }

  $("answer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    answer("approve");
  });
  $("approve-no").addEventListener("click", () => answer("deny"));

  $("report").addEventListener("click", async () => {
    const c = denied;
    if (!c) return;
    const r = await api("/approve/api/report", {
      request: c.req.id, device: c.device.device,
      signature: await sign(c.key, reportMessage(c.req.id, c.req.challenge)),
    });
    denied = null;
    done(r.ok ? r.data.message : r.data.error);
  });
  $("denied-done").addEventListener("click", () => {
    denied = null;
    done("Refused. Nothing else happens.");
  });
  $("done-ok").addEventListener("click", () => {
    // The next screen is whatever Lanyard says now: idle, or a request.
    screen = "";
    say("Checking for sign-ins…");
    refresh();
  });

  // --- Waiting for requests ------------------------------------------------

  let refreshing = false;
  async function refresh() {
    if (refreshing || screen === "app-request" || screen === "app-denied" || screen === "app-done") return;
    refreshing = true;
    try {
      const list = await devices();
      if (!list.length) {
        if (screen !== "app-unpaired") show("app-unpaired");
        return;
      }
      const accounts = [];
      const push = await currentPush();
      for (const d of list) {
        const at = Date.now();
        const r = await api("/approve/api/pending", {device: d.device, at, signature: await sign(d.key, listMessage(d.device, at)), push});
        if (!r.ok) {
          if (r.data.unpaired) await dropDevice(d.device);
          else say(r.data.error);
          continue;
        }
        accounts.push(r.data.account);
        if (r.data.requests.length && screen !== "app-request") {
          showRequest({kind: "request", req: r.data.requests[0], key: d.key, device: d});
          return;
        }
      }
      if (!accounts.length) {
        show("app-unpaired");
        return;
      }
      $("app-account").textContent = accounts.join(", ");
      $("app-push-off").hidden = !!push;
      $("app-notify").hidden = !!push || !("PushManager" in window) || !window.Notification || Notification.permission === "denied";
      if (screen !== "app-idle") {
        say("");
        show("app-idle");
      }
    } catch (e) {
      say("Lanyard cannot be reached. Check the phone's connection.");
    } finally {
      refreshing = false;
    }
  }

  $("app-notify").addEventListener("click", async () => {
    const push = await subscribe();
    if (!push) {
      say("Notifications could not be turned on. Keep this app open when you sign in.");
      return;
    }
    say("Notifications are on.");
    refresh();
  });

  async function start() {
    if (!window.crypto || !crypto.subtle || !window.indexedDB || !window.fetch) {
      show("app-unsupported");
      return;
    }
    registerWorker();
    const m = location.hash.match(/^#pair=([A-Za-z0-9_-]{43})$/);
    if (m) {
      // The token is used once; it should not stay in the address bar.
      history.replaceState(null, "", location.pathname);
      await pair(m[1]);
    } else {
      await refresh();
    }
    setInterval(() => {
      if (document.visibilityState === "visible") refresh();
    }, 2000);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") refresh();
    });
  }

  start();
})();
