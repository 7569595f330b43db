// Lanyard's passkey script: the only JavaScript on the pages, loaded from
// 'self' (the CSP allows no inline script). Everything else works without it.
//
// Each passkey block on a page is an element with data-webauthn:
//   data-webauthn="register"      navigator.credentials.create (enrolment, account)
//   data-webauthn="authenticate"  navigator.credentials.get (second factor,
//                                 passwordless sign-in, confirming it is you)
//   data-options   POST here for the options (JSON from the server)
//   data-finish    POST the result here as {"credential": …, "name": …}
//   data-mediation="conditional"  also offer passkeys in the username
//                                 field's autofill where the browser can
//   data-name-input  id of an input whose value names a new passkey
// Inside it: [data-webauthn-ready] (shown when the browser has WebAuthn),
// [data-webauthn-start] (the button), [data-webauthn-error] (messages) and
// [data-webauthn-unsupported] (shown when it has not).
// The server answers {"redirect": URL} to go on, or {"error": sentence}.
(function () {
  "use strict";

  var b64 = {
    decode: function (s) {
      s = s.replace(/-/g, "+").replace(/_/g, "/");
      while (s.length % 4) s += "=";
      var bin = atob(s), out = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out.buffer;
    },
    encode: function (buf) {
      var bytes = new Uint8Array(buf), bin = "";
      for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    }
  };

  function creationOptions(o) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(o);
    }
    o.challenge = b64.decode(o.challenge);
    o.user.id = b64.decode(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = b64.decode(c.id); });
    return o;
  }

  function requestOptions(o) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(o);
    }
    o.challenge = b64.decode(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = b64.decode(c.id); });
    return o;
  }

  function credentialJSON(c) {
    if (typeof c.toJSON === "function") {
      try { return c.toJSON(); } catch (e) { /* fall through */ }
    }
    var r = c.response, out = {
      id: c.id,
      rawId: b64.encode(c.rawId),
      type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || undefined,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: b64.encode(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = b64.encode(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = b64.encode(r.authenticatorData);
      out.response.signature = b64.encode(r.signature);
      if (r.userHandle) out.response.userHandle = b64.encode(r.userHandle);
    }
    return out;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () {
        return { error: "Something went wrong. Reload the page and try again." };
      }).then(function (data) { data.ok = res.ok; return data; });
    });
  }

  function setup(block) {
    var kind = block.getAttribute("data-webauthn");
    var optionsURL = block.getAttribute("data-options");
    var finishURL = block.getAttribute("data-finish");
    var ready = block.querySelector("[data-webauthn-ready]");
    var button = block.querySelector("[data-webauthn-start]");
    var errorBox = block.querySelector("[data-webauthn-error]");
    var unsupported = block.querySelector("[data-webauthn-unsupported]");
    var nameInput = document.getElementById(block.getAttribute("data-name-input") || "");
    var conditional = null; // the AbortController of the autofill request

    function showError(msg) {
      if (!errorBox) return;
      errorBox.textContent = msg;
      errorBox.hidden = !msg;
    }

    if (!window.PublicKeyCredential || !navigator.credentials) {
      if (unsupported) unsupported.hidden = false;
      return;
    }
    if (ready) ready.hidden = false;

    // answer follows the server: on to the next page, or show why not (and,
    // when the page is out of date, go where the browser belongs).
    function answer(data) {
      if (data.ok && data.redirect) {
        window.location.assign(data.redirect);
        return;
      }
      showError(data.error || "Something went wrong. Try again.");
      if (data.redirect) {
        setTimeout(function () { window.location.assign(data.redirect); }, 2500);
      }
    }

    function ceremony(mediation, signal) {
      var url = optionsURL + (mediation === "conditional" ? "?mediation=conditional" : "");
      return post(url, {}).then(function (opts) {
        if (!opts.ok) throw opts;
        var req = { signal: signal };
        if (kind === "register") {
          req.publicKey = creationOptions(opts.publicKey);
          return navigator.credentials.create(req);
        }
        req.publicKey = requestOptions(opts.publicKey);
        if (mediation === "conditional") req.mediation = "conditional";
        return navigator.credentials.get(req);
      }).then(function (cred) {
        if (!cred) throw { error: "No passkey was chosen. Try again." };
        var body = { credential: credentialJSON(cred) };
        if (nameInput) body.name = nameInput.value;
        return post(finishURL, body);
      }).then(answer);
    }

    function failed(err) {
      if (err && err.name === "AbortError") return;
      if (err && (err.error || err.redirect)) { answer(err); return; }
      if (err && err.name === "NotAllowedError") {
        showError("The passkey request was cancelled or timed out. Try again.");
      } else if (err && err.name === "InvalidStateError") {
        showError("This passkey or security key is already on your account.");
      } else {
        showError("Your passkey or security key could not be used. Try again, or use another way.");
      }
    }

    if (button) {
      button.addEventListener("click", function () {
        showError("");
        if (conditional) { conditional.abort(); conditional = null; }
        button.disabled = true;
        ceremony("", undefined).catch(failed).then(function () { button.disabled = false; });
      });
    }

    if (kind === "authenticate" && block.getAttribute("data-mediation") === "conditional" &&
        PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (!ok) return;
        conditional = new AbortController();
        ceremony("conditional", conditional.signal).catch(failed);
      }).catch(function () { /* no autofill: the button remains */ });
    }
  }

  function start() {
    var blocks = document.querySelectorAll("[data-webauthn]");
    for (var i = 0; i < blocks.length; i++) setup(blocks[i]);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
