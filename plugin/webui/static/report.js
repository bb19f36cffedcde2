/* The report page (report.html): where the viewer goes, the draft's
 * autosave, signing and addenda. Vanilla, no build; pacs.js first.
 *
 * Autosave: a PUT {version, sections...} ~1.5 s after typing stops and at
 * least every 5 s while typing, one request at a time, so each save names
 * the version the previous one returned. Every keystroke is also copied to
 * localStorage (per study and user): a failed save, a lost connection or a
 * closed tab loses nothing the browser saw, and the page offers that copy
 * back when it holds more than the server. Leaving the page sends what is
 * pending with fetch(keepalive). A 409 (a colleague's or another tab's
 * save, or a claim) stops autosaving until the reader loads the server's
 * version; their own text is then kept aside, not overwritten.
 *
 * The author's own saves never fight the author: a reload right after typing
 * can render the page before the save sent on leaving has arrived, so when
 * this browser holds text the page does not show, the page asks for the
 * latest version first (for a few seconds) and shows it; "Restore my copy"
 * saves on top of the author's own latest version. While a colleague reads
 * the study (their claim), the page is read-only and offers the take-over.
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 1500;
  var MAX_WAIT_MS = 5000;
  var RETRY_FIRST_MS = 1000;
  var RETRY_MAX_MS = 30000;
  var KEEPALIVE_MAX_BYTES = 60000; /* browsers refuse keepalive bodies over 64 KiB */
  var RECONCILE_TRIES = 12;         /* the save sent on leaving: wait up to ~3 s for it */
  var RECONCILE_MS = 250;
  var PLACEMENT_KEY = "pacs.viewer-placement";
  var VIEWER_WINDOW = "pacs-viewer";

  var data, texts, apiUrl, localKey, keptKey;
  var state = {
    version: 0,
    templateId: null,
    updatedAt: 0,
    dirty: false,        /* the form holds text the server has not been sent */
    inFlight: null,      /* the save under way (a Promise of true/false) */
    stopped: false,      /* a conflict or an ended session: no autosave until resolved */
    debounceTimer: 0,
    maxWaitTimer: 0,
    retryTimer: 0,
    retryDelay: 0
  };

  function byId(id) {
    return document.getElementById(id);
  }

  /* A message of page_data.texts with its %(name)s filled in. */
  function text(key, values) {
    return texts[key].replace(/%\((\w+)\)s/g, function (whole, name) {
      return values && name in values ? values[name] : whole;
    });
  }

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function clock(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function localDateTime(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  /* <time datetime="...Z" data-local> are rendered in UTC; show local time. */
  function localiseTimes() {
    document.querySelectorAll("time[data-local]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (!isNaN(date.getTime())) {
        element.textContent = localDateTime(date);
        element.title = element.getAttribute("datetime");
      }
    });
  }

  function showMessage(message) {
    var element = byId("report-message");
    element.textContent = message || "";
    element.hidden = !message;
  }

  function readStored(key) {
    try {
      return JSON.parse(localStorage.getItem(key) || "null");
    } catch (error) {
      return null;
    }
  }

  function store(key, value) {
    try {
      if (value === null) {
        localStorage.removeItem(key);
      } else {
        localStorage.setItem(key, JSON.stringify(value));
      }
    } catch (error) { /* storage full or refused: the server copy still counts */ }
  }

  /* --- where the viewer goes -------------------------------------------- */

  function setUpViewer() {
    var page = byId("report-page");
    var frame = byId("viewer-frame");
    var toggle = byId("viewer-window-toggle");
    var reopen = byId("viewer-reopen");
    var url = frame.getAttribute("data-src");
    var viewerWindow = null;

    function openWindow() {
      viewerWindow = window.open(url, VIEWER_WINDOW);
    }

    function place(inWindow) {
      page.classList.toggle("viewer-in-window", inWindow);
      toggle.checked = inWindow;
      reopen.hidden = !inWindow;
      if (inWindow) {
        if (frame.hasAttribute("src")) {
          frame.setAttribute("src", "about:blank");  /* unloads the embedded viewer */
        }
      } else {
        if (viewerWindow && !viewerWindow.closed) {
          viewerWindow.close();
        }
        if (frame.getAttribute("src") !== url) {
          frame.setAttribute("src", url);
        }
      }
    }

    /* A window cannot be opened without a click (pop-up blockers): on load
     * the reader's choice only decides whether the frame loads. */
    place(readStored(PLACEMENT_KEY) === "window");
    keepTypingFocus(frame);
    toggle.addEventListener("change", function () {
      store(PLACEMENT_KEY, toggle.checked ? "window" : "embedded");
      place(toggle.checked);
      if (toggle.checked) {
        openWindow();
      }
    });
    reopen.addEventListener("click", openWindow);
  }

  /* The viewer focuses itself as it loads: a reader typing the report
   * meanwhile would type into the viewer (into its hotkeys). Focus the frame
   * takes from a field, unless the reader just clicked in the viewer or
   * pressed Tab, goes straight back (a microtask runs before the next key). */
  function keepTypingFocus(frame) {
    var chosenAt = 0;
    function chosen() {
      chosenAt = Date.now();
    }
    frame.addEventListener("load", function () {
      frame.contentDocument.addEventListener("pointerdown", chosen, true);  /* same origin */
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Tab") {
        chosen();
      }
    }, true);
    document.addEventListener("focusout", function (event) {
      var field = event.target;
      if (!field.matches("textarea, input, select")) {
        return;
      }
      queueMicrotask(function () {
        if (document.activeElement === frame && Date.now() - chosenAt > 1000) {
          field.focus();
        }
      });
    });
  }

  /* --- the form ------------------------------------------------------------ */

  function sectionFields() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-section]"));
  }

  function currentSections() {
    var sections = {};
    sectionFields().forEach(function (field) {
      sections[field.name] = field.value;
    });
    return sections;
  }

  function fillSections(sections, onlyEmpty) {
    sectionFields().forEach(function (field) {
      var value = sections[field.name];
      if (typeof value === "string" && !(onlyEmpty && field.value.trim())) {
        field.value = value;
      }
    });
  }

  function sameSections(a, b) {
    return sectionFields().every(function (field) {
      return (a[field.name] || "") === (b[field.name] || "");
    });
  }

  function showState(key, values) {
    var element = byId("save-state");
    element.textContent = text(key, values);
    element.setAttribute("data-state", key);
  }

  function keepLocalCopy() {
    store(localKey, {base: state.version, at: Date.now(), sections: currentSections(),
                     template_id: state.templateId});
  }

  function changed() {
    state.dirty = true;
    keepLocalCopy();
    if (state.stopped) {
      return;
    }
    showState("unsaved");
    if (!state.retryTimer) {  /* offline: the back-off decides when to try again */
      scheduleSave();
    }
  }

  /* --- saving ---------------------------------------------------------------- */

  function scheduleSave() {
    clearTimeout(state.debounceTimer);
    state.debounceTimer = setTimeout(save, DEBOUNCE_MS);
    if (!state.maxWaitTimer) {
      state.maxWaitTimer = setTimeout(save, MAX_WAIT_MS);
    }
  }

  function clearTimers() {
    clearTimeout(state.debounceTimer);
    clearTimeout(state.maxWaitTimer);
    clearTimeout(state.retryTimer);
    state.maxWaitTimer = 0;
    state.retryTimer = 0;
  }

  function saveBody(version) {
    var body = currentSections();
    body.version = version;
    if (state.templateId) {
      body.template_id = state.templateId;
    }
    if (data.report.take_over) {
      body.take_over = true; /* a colleague's draft: the page said saving takes it over */
    }
    return body;
  }

  /* Send the form unless a save is under way (when it ends it schedules
   * the next one) or nothing changed. A Promise of whether the last request
   * succeeded (true when there was nothing to send). */
  function save() {
    if (state.inFlight) {
      return state.inFlight;
    }
    clearTimers();
    if (state.stopped || !state.dirty) {
      return Promise.resolve(!state.dirty);
    }
    state.dirty = false;
    showState("saving");
    return track(pacs.api("PUT", apiUrl, saveBody(state.version)));
  }

  /* Until everything typed is saved; false when a save failed. */
  function flush() {
    return save().then(function (succeeded) {
      return succeeded && state.dirty ? flush() : succeeded;
    });
  }

  function track(request) {
    var tracked = request.then(function (answer) {
      settle();
      return saved(answer);
    }, function (error) {
      settle();
      state.dirty = true;
      return failed(error);
    });
    function settle() {
      if (state.inFlight === tracked) {
        state.inFlight = null;
      }
    }
    state.inFlight = tracked;
    return tracked;
  }

  function saved(answer) {
    state.version = answer.version;
    state.updatedAt = Date.parse(answer.updated_at) || Date.now();
    state.retryDelay = 0;
    byId("pdf-link").hidden = false;
    if (sameSections(answer.sections, currentSections())) {
      store(localKey, null);
    } else {
      keepLocalCopy();  /* typed while the save was under way: on top of this version */
    }
    if (state.dirty) {
      showState("unsaved");
      scheduleSave();
    } else {
      showState("saved_at", {time: clock(new Date())});
    }
    return true;
  }

  function failed(error) {
    var status = error instanceof pacs.ApiError ? error.status : 0;
    if (status === 409) {
      conflict(error.message);
    } else if (status === 401) {
      state.stopped = true;
      showState("signed_out");
    } else if (status >= 400 && status < 500) {
      showState("not_saved", {error: error.message});  /* typing again retries */
    } else {  /* no answer, or the server is restarting */
      state.retryDelay = Math.min(RETRY_MAX_MS, state.retryDelay ? state.retryDelay * 2 : RETRY_FIRST_MS);
      showState("offline", {seconds: Math.round(state.retryDelay / 1000)});
      clearTimers();
      state.retryTimer = setTimeout(function () {
        state.retryTimer = 0;
        save();
      }, state.retryDelay);
    }
    return false;
  }

  function retryNow() {
    if (state.retryTimer) {
      clearTimers();
      save();
    }
  }

  /* Leaving the page (or hiding it, which on phones and tablets may be the
   * last chance): send what is pending in a request that outlives the page.
   * With a save under way, this one names the version that save makes; if
   * that one fails, this one is refused too and the local copy has the text. */
  function saveOnLeave() {
    if (!state.dirty || state.stopped) {
      return;
    }
    clearTimers();
    var named = state.inFlight ? state.version + 1 : state.version;
    var body = JSON.stringify(saveBody(named));
    /* What the next page needs to tell "not saved" from "saved, not shown yet". */
    store(localKey, {base: named, at: Date.now(), sections: currentSections(), template_id: state.templateId,
                     sent: true});
    var request = fetch(apiUrl, {
      method: "PUT",
      credentials: "same-origin",
      keepalive: new Blob([body]).size <= KEEPALIVE_MAX_BYTES,
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRF-Token": pacs.csrfToken()},
      body: body
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (answer) {
        if (!response.ok) {
          throw new pacs.ApiError((answer && answer.error) || response.statusText, response.status, answer);
        }
        return answer;
      });
    });
    state.dirty = false;
    /* The page may live on (a hidden tab): follow the answer, after the save under way. */
    track(state.inFlight ? state.inFlight.then(function () { return request; }) : request);
  }

  /* --- conflicts -------------------------------------------------------------- */

  function conflict(message) {
    state.stopped = true;
    clearTimers();
    showState("conflict", {error: message});
    byId("conflict-text").textContent = text("conflict", {error: message});
    byId("conflict-banner").hidden = false;
  }

  function loadTheirs() {
    keepAside(currentSections());
    pacs.api("GET", apiUrl).then(function (answer) {
      if (answer.status === "final" || answer.status === "amended") {
        store(localKey, null);
        location.reload();
        return;
      }
      sectionFields().forEach(function (field) {
        field.value = answer.sections[field.name] || "";
      });
      state.version = answer.version;
      state.dirty = false;
      state.stopped = false;
      store(localKey, null);
      byId("conflict-banner").hidden = true;
      showState("loaded", {version: answer.version});
    }).catch(function (error) {
      showMessage(text("failed", {error: error.message}));
    });
  }

  /* The reader's own text after a conflict, until dismissed (a reload keeps it). */
  function keepAside(sections) {
    store(keptKey, sections);
    showKeptCopy();
  }

  function showKeptCopy() {
    var sections = readStored(keptKey);
    var box = byId("kept-copy");
    var list = byId("kept-copy-sections");
    box.hidden = !sections;
    list.textContent = "";
    if (!sections) {
      return;
    }
    Object.keys(sections).forEach(function (name) {
      var label = document.querySelector('label[for="section-' + name + '"]');
      if (!sections[name]) {
        return;
      }
      var heading = document.createElement("h3");
      heading.textContent = label ? label.textContent : name;
      var body = document.createElement("div");
      body.className = "report-text";
      body.textContent = sections[name];
      list.appendChild(heading);
      list.appendChild(body);
    });
  }

  /* --- a copy this browser kept ----------------------------------------------- */

  /* The local copy is offered when it is newer than what the server has: it
   * was made on the server's current version (its save never arrived) or
   * after the server's last save. */
  function offerLocalCopy() {
    var copy = readStored(localKey);
    if (!copy || !copy.sections) {
      return;
    }
    var newer = copy.base >= state.version || copy.at > state.updatedAt;
    if (!newer || sameSections(copy.sections, currentSections())) {
      store(localKey, null);
      return;
    }
    byId("restore-text").textContent = text("local_copy", {time: localDateTime(new Date(copy.at))});
    byId("restore-banner").hidden = false;
    byId("restore-local").addEventListener("click", function () {
      byId("restore-banner").hidden = true;
      /* On top of the latest version when it is the author's own: their copy is
       * what they want, and their own save is no colleague's to protect. */
      pacs.api("GET", apiUrl).then(function (answer) {
        if (answer.status === "draft" && answer.own_draft !== false) {
          state.version = answer.version;
        }
      }).catch(function () { /* the save below says what is wrong */ }).then(function () {
        fillSections(copy.sections, false);
        state.templateId = copy.template_id || state.templateId;
        state.dirty = true;
        save();
      });
    });
    byId("discard-local").addEventListener("click", function () {
      store(localKey, null);
      byId("restore-banner").hidden = true;
    });
  }

  /* The page may show an older version than the server has: this browser's
   * text was sent as the last page was left, and that save may have arrived
   * after this page was made. Ask for the latest (the save may still be on
   * its way: a few tries) before offering the copy. */
  function reconcile() {
    var copy = readStored(localKey);
    if (!copy || !copy.sections || sameSections(copy.sections, currentSections())) {
      store(localKey, null);
      return Promise.resolve();
    }
    var shown = byId("save-state").innerHTML;
    var tries = 0;
    lockForm(true);
    showState("checking");
    return new Promise(function (resolve) {
      function done(message) {
        lockForm(false);
        if (message) {
          showState(message, {version: state.version});
        } else {
          byId("save-state").innerHTML = shown;
          byId("save-state").removeAttribute("data-state");
        }
        resolve();
      }
      function ask() {
        pacs.api("GET", apiUrl).then(function (answer) {
          if (answer.status === "final" || answer.status === "amended") {
            store(localKey, null);
            location.reload();
            return;
          }
          if (answer.version > state.version) {
            adopt(answer);
          }
          if (sameSections(copy.sections, currentSections())) {
            store(localKey, null);
            done("latest");
          } else if (copy.sent && answer.version <= copy.base && ++tries < RECONCILE_TRIES) {
            window.setTimeout(ask, RECONCILE_MS);
          } else {
            done(answer.version > Number(data.report.version) ? "latest" : "");
            offerLocalCopy();
          }
        }).catch(function () {
          done("");
          offerLocalCopy();
        });
      }
      ask();
    });
  }

  /* The server's newer version of this draft, in the form. */
  function adopt(answer) {
    sectionFields().forEach(function (field) {
      field.value = answer.sections[field.name] || "";
    });
    state.version = answer.version;
    state.templateId = answer.template_id || state.templateId;
    state.updatedAt = Date.parse(answer.updated_at) || state.updatedAt;
    state.dirty = false;
  }

  function lockForm(locked) {
    sectionFields().forEach(function (field) {
      field.readOnly = locked;
    });
    var finalizeButton = byId("finalize");
    if (finalizeButton) {
      finalizeButton.disabled = locked;
    }
  }

  /* --- a colleague reads the study: read-only, with the take-over offered ---- */

  function hasText(sections) {
    return Object.keys(sections).some(function (name) { return Boolean(sections[name]); });
  }

  function setUpReadOnly() {
    var copy = readStored(localKey);
    var form = sectionFields().length ? currentSections() : null;
    if (copy && copy.sections && hasText(copy.sections) && !(form && sameSections(copy.sections, form))) {
      keepAside(copy.sections);  /* typed before the colleague took the study: theirs to copy from */
    }
    store(localKey, null);
    byId("take-over").addEventListener("click", takeOver);
  }

  function takeOver() {
    if (!window.confirm(text("confirm_take_over"))) {
      return;
    }
    var button = byId("take-over");
    button.disabled = true;
    pacs.api("POST", "/pacs/api/studies/" + encodeURIComponent(data.uid) + "/claim", {take_over: true})
      .then(function () {
        location.reload();
      }).catch(function (error) {
        button.disabled = false;
        showMessage(text("failed", {error: error.message}));
      });
  }

  /* --- templates, signing, addenda ----------------------------------------- */

  function applyTemplate() {
    var choice = byId("template-choice");
    var template = data.templates.filter(function (t) { return String(t.id) === choice.value; })[0];
    if (!template) {
      return;
    }
    state.templateId = template.id;
    fillSections(template.sections, true);
    changed();
  }

  function finalize() {
    if (!window.confirm(text("confirm_finalize"))) {
      return;
    }
    var button = byId("finalize");
    button.disabled = true;
    showMessage("");
    flush().then(function (allSaved) {
      if (!allSaved) {
        throw new Error(byId("save-state").textContent);
      }
      return pacs.api("POST", apiUrl + "/finalize", {version: state.version});
    }).then(function () {
      store(localKey, null);
      location.reload();
    }).catch(function (error) {
      button.disabled = false;
      showMessage(text("failed", {error: error.message}));
    });
  }

  function signAddendum() {
    var field = byId("addendum-text");
    if (!window.confirm(text("confirm_addendum"))) {
      return;
    }
    var button = byId("sign-addendum");
    button.disabled = true;
    pacs.api("POST", apiUrl + "/addenda", {text: field.value}).then(function () {
      location.reload();
    }).catch(function (error) {
      button.disabled = false;
      showMessage(text("failed", {error: error.message}));
    });
  }

  /* --- start ------------------------------------------------------------------ */

  function setUpEditor() {
    var report = data.report;
    state.version = report.version;
    state.templateId = report.template_id || null;
    state.updatedAt = Date.parse(report.updated_at) || 0;
    if (report.read_only) {
      setUpReadOnly();
      return;
    }
    reconcile();
    sectionFields().forEach(function (field) {
      field.addEventListener("input", changed);
    });
    byId("template-choice").addEventListener("change", applyTemplate);
    var finalizeButton = byId("finalize");
    if (finalizeButton) {
      finalizeButton.addEventListener("click", finalize);
    }
    byId("load-theirs").addEventListener("click", loadTheirs);
    window.addEventListener("online", retryNow);
    window.addEventListener("pagehide", saveOnLeave);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        saveOnLeave();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    data = pacs.pageData();
    texts = data.texts;
    apiUrl = byId("report-page").getAttribute("data-api");
    localKey = "pacs.report:" + data.uid + ":" + data.me;
    keptKey = localKey + ":kept";
    localiseTimes();
    setUpViewer();
    showKeptCopy();
    byId("kept-copy-dismiss").addEventListener("click", function () {
      keepAside(null);
    });
    if (data.report) {
      setUpEditor();
    }
    var addendum = byId("sign-addendum");
    if (addendum) {
      addendum.addEventListener("click", signAddendum);
    }
  });
}());
