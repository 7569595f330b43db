// The Lanyard approval app's service worker (scope /approve). It shows the
// Web Push wake-up as a notification and, when it is tapped, opens the app
// (or brings it forward and tells it to look). The push names the request
// and the application only; the app asks Lanyard for the rest, and the
// officer types the number the browser shows.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function tellClients() {
  const all = await self.clients.matchAll({type: "window", includeUncontrolled: true});
  for (const c of all) c.postMessage({type: "refresh"});
  return all;
}

self.addEventListener("push", (event) => {
  let p = {};
  try {
    p = event.data ? event.data.json() : {};
  } catch (e) {
    p = {};
  }
  const title = p.application ? "Sign-in to " + p.application + "?" : "A sign-in is waiting for your approval";
  event.waitUntil(Promise.all([
    tellClients(),
    self.registration.showNotification(title, {
      body: "Open the Lanyard approval app and enter the number shown in your browser.",
      tag: "lanyard-approval",
      renotify: true,
      requireInteraction: true,
      icon: "/static/approve/icon-192.png",
      data: {request: p.request || ""},
    }),
  ]));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const all = await tellClients();
    for (const c of all) {
      if (new URL(c.url).pathname === "/approve" && "focus" in c) return c.focus();
    }
    return self.clients.openWindow("/approve");
  })());
});
