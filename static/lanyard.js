// Lanyard's page script, on every page; the pages work without it.
//
// Back must not bring a done step back to the screen. Pages are sent with
// Cache-Control: no-store, yet Chromium may still show one from its
// back/forward cache (its memory of the page, with no request to Lanyard):
// the recovery codes, say, after they were saved. Such a page asks Lanyard
// again, which shows the step the sign-in is really at.
(function () {
  "use strict";
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) window.location.reload();
  });
})();
