/* PACS web UI helpers: no framework, no build step.
 *
 *   pacs.api(method, url, body) -> Promise of the JSON answer; sends the
 *     CSRF token on every non-GET request, throws pacs.ApiError (with the
 *     server's {"error"} message and .status) on a non-2xx answer.
 *   pacs.pageData() -> the page's <script type="application/json" id="page-data">.
 *
 * On pages of a signed-in user (body[data-keepalive]) the session is
 * refreshed every 4 minutes, so a radiologist reading for hours stays
 * signed in; when the session is gone the browser goes to the login page.
 * Forms (or submit buttons) with data-confirm ask before submitting,
 * buttons with data-copy-target copy that field's value, and a
 * [data-history-back] button (error pages) goes back to the previous page of
 * this site, shown only when there is one.
 */
(function () {
  "use strict";

  var KEEPALIVE_MS = 4 * 60 * 1000;
  var REFRESH_URL = "/pacs/api/auth/refresh";

  function ApiError(message, status, data) {
    this.name = "ApiError";
    this.message = message;
    this.status = status;
    this.data = data;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* A refresh may rotate the token: keep the meta tag and forms in step. */
  function setCsrfToken(token) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      meta.setAttribute("content", token);
    }
    document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) {
      input.value = token;
    });
  }

  function loginUrl() {
    return "/pacs/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  function readJson(response) {
    var type = response.headers.get("Content-Type") || "";
    if (response.status === 204 || type.indexOf("application/json") === -1) {
      return Promise.resolve(null);
    }
    return response.json().catch(function () { return null; });
  }

  function api(method, url, body) {
    method = (method || "GET").toUpperCase();
    var headers = { "Accept": "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") {
      headers["X-CSRF-Token"] = csrfToken();
    }
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return readJson(response).then(function (data) {
        if (!response.ok) {
          var message = (data && data.error) || response.statusText || ("HTTP " + response.status);
          throw new ApiError(message, response.status, data);
        }
        return data;
      });
    });
  }

  function pageData() {
    var element = document.getElementById("page-data");
    return element ? JSON.parse(element.textContent) : null;
  }

  function keepSessionAlive() {
    api("POST", REFRESH_URL).then(function (data) {
      if (data && data.csrf_token) {
        setCsrfToken(data.csrf_token);
      }
    }).catch(function (error) {
      if (error instanceof ApiError && error.status === 401) {
        location.assign(loginUrl());
      }
      /* Anything else (network down, server restarting): try next time. */
    });
  }

  function confirmSubmit(event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) ||
      event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }

  function copyField(event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) {
      return;
    }
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    if (!field) {
      return;
    }
    field.select();
    var copied = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(field.value)
      : Promise.resolve(document.execCommand("copy"));
    copied.then(function () {
      var text = button.getAttribute("data-copied-text");
      if (text) {
        button.textContent = text;
      }
    }).catch(function () { /* the text stays selected for Ctrl+C */ });
  }

  function offerHistoryBack() {
    var button = document.querySelector("[data-history-back]");
    var cameFromHere = document.referrer.indexOf(location.origin + "/") === 0;
    if (button && cameFromHere && history.length > 1) {
      button.hidden = false;
      button.addEventListener("click", function () { history.back(); });
    }
  }

  document.addEventListener("submit", confirmSubmit);
  document.addEventListener("click", copyField);
  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.hasAttribute("data-keepalive")) {
      window.setInterval(keepSessionAlive, KEEPALIVE_MS);
    }
    offerHistoryBack();
  });

  window.pacs = {
    api: api,
    ApiError: ApiError,
    csrfToken: csrfToken,
    loginUrl: loginUrl,
    pageData: pageData
  };
}());
