// Waiting for the Lanyard approval app, on the computer: the mfa-challenge
// page, the pairing pages and the confirm-it-is-you page (templates/
// layout.html, "approval-wait"). It starts the request when the page has
// none yet, then asks Lanyard every 1.5 s what the phone did (GET
// data-status, JSON), shows the parts whose data-approval-show names the
// state, and once the phone said Yes submits the page's own "continue"
// form, the same one a browser without JavaScript offers as a button.
// Short polling, from any node: the request lives in the database.
"use strict";
(() => {
  const box = document.querySelector("[data-approval]");
  if (!box || !window.fetch) return;
  const message = box.querySelector("[data-approval-message]");
  const number = document.getElementById("match-number");
  const finish = box.querySelector("form[data-approval-finish]");
  const live = ["waiting", "number"];
  let state = box.dataset.state;
  let finishing = false;

  function show(v) {
    state = v.state;
    box.dataset.state = state;
    if (v.message && message.textContent !== v.message) message.textContent = v.message;
    if (number && (v.number || "") !== number.textContent) number.textContent = v.number || "";
    for (const el of box.querySelectorAll("[data-approval-show]")) {
      el.hidden = !el.dataset.approvalShow.split(" ").includes(state);
    }
    if (state === "approved" && finish && !finishing) {
      finishing = true;
      finish.submit();
    }
  }

  // ask fetches JSON; a page that is no longer where the browser belongs
  // (the guard redirected) is followed as a person would.
  async function ask(url, init) {
    const resp = await fetch(url, Object.assign({credentials: "same-origin", headers: {Accept: "application/json"}}, init));
    if (resp.redirected) {
      location.assign(resp.url);
      return null;
    }
    const type = resp.headers.get("Content-Type") || "";
    if (!type.startsWith("application/json")) {
      location.reload();
      return null;
    }
    return resp.json();
  }

  async function poll() {
    if (!live.includes(state) || finishing) return;
    try {
      const v = await ask(box.dataset.status);
      if (v && v.state) show(v);
    } catch (e) {
      // The network is away for a moment: ask again.
    }
    if (live.includes(state)) setTimeout(poll, 1500);
  }

  async function start() {
    try {
      const v = await ask(box.dataset.start, {method: "POST"});
      if (!v) return;
      if (v.state === "refused") {
        message.textContent = v.message;
        return;
      }
      show(v);
      poll();
    } catch (e) {
      // The button stays for the person to press.
    }
  }

  if (state === "none" && box.dataset.start) start();
  else if (live.includes(state)) setTimeout(poll, 1500);
})();
