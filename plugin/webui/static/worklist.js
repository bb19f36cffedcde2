/* Studies in the browser: helpers every page showing studies uses, and the
 * live worklist of /pacs/. Vanilla JS, no build step; needs pacs.js.
 *
 * pacs.worklist (for study.js and this file):
 *   fillFields(root, item)   fills root's [data-field] elements from a
 *                            worklist item (GET /pacs/api/studies)
 *   showActions(root, item)  shows the [data-action] buttons that fit
 *   act(action, uid, value)  POSTs claim/release/assign/unassign/assign-to/
 *                            priority -> Promise of the updated item
 *   failure(action, error)   the message to show for a failed action
 *   format(template, values)
 *
 * Person names come formatted by the server (patient_display_name,
 * referring_physician_display_name: plugin/dicomnames.py), as on every page.
 * On any page, [data-dicom-time],
 * [data-timestamp] (API times, shown local), [data-minutes] (durations)
 * and [data-clock] (time since arrival, red
 * past the target of the nearest [data-target-<priority>]) are formatted.
 *
 * The worklist page (#worklist) keeps its filters, sort and page in the URL
 * (history.replaceState), asks the API with the same query and polls it
 * every page_data.poll_ms, updating rows in place: scroll position,
 * selection and focus survive. Keys: j/k or arrows move, Enter opens,
 * c claims, r releases, / searches.
 * DICOM-derived text is only ever set with textContent.
 */
(function () {
  "use strict";

  var data = pacs.pageData() || {};
  var texts = data.texts || {};
  var people = data.people || {};
  var me = data.me || "";
  var mayReleaseAny = data.may_release_any === true;
  var mayAssignAny = data.may_assign_any === true;
  var UNREAD = ["arrived", "in_progress"];
  var CLOCK_MS = 15000;

  /* --- formatting ------------------------------------------------------ */

  function format(template, values) {
    return String(template || "").replace(/%\((\w+)\)s/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : whole;
    });
  }

  /* DICOM TM "HHMMSS.frac" -> "HH:MM". */
  function dicomTime(tm) {
    var digits = String(tm || "").replace(/[^0-9]/g, "");
    return digits.length >= 4 ? digits.slice(0, 2) + ":" + digits.slice(2, 4) : "";
  }

  function duration(minutes) {
    var total = Math.max(0, Math.floor(minutes));
    var days = Math.floor(total / 1440);
    var hours = Math.floor((total % 1440) / 60);
    var rest = total % 60;
    if (days) {
      return format(texts.days, { d: days, h: hours });
    }
    return hours ? format(texts.hours, { h: hours, m: rest < 10 ? "0" + rest : rest })
      : format(texts.minutes, { m: rest });
  }

  /* An API timestamp in ms; also takes "...+00:00Z" (an offset and a Z),
   * which the study index currently writes for arrival times. */
  function parseTime(text) {
    return Date.parse(String(text || "").replace(/([+-]\d\d:\d\d)Z$/, "$1"));
  }

  /* An API timestamp as local "YYYY-MM-DD HH:MM". */
  function localTime(text) {
    var time = parseTime(text);
    if (isNaN(time)) {
      return "";
    }
    var local = new Date(time - new Date(time).getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16).replace("T", " ");
  }

  function displayName(username) {
    return username ? (people[username] || username) : "";
  }

  /* A status or priority badge, cloned from the page's <template id="badges">
   * (the server's own macro, translated). */
  function badge(kind, code) {
    var source = document.getElementById("badges");
    var found = source && source.content.querySelector(".badge-" + kind + "-" + code);
    if (found) {
      return found.cloneNode(true);
    }
    var span = document.createElement("span");
    span.className = "badge";
    span.textContent = code || "";
    return span;
  }

  function ageSex(item) {
    var sex = item.patient_sex || "";
    return item.patient_age === null || item.patient_age === undefined ? sex
      : format(texts.age_sex, { age: item.patient_age, sex: sex }).trim();
  }

  /* --- the turnaround clock -------------------------------------------- */

  function targetMinutes(cell, priority) {
    var holder = cell.closest("[data-target-routine]");
    var value = holder && holder.getAttribute("data-target-" + priority);
    return value ? Number(value) : Infinity;
  }

  /* Unread: time since arrival, "overdue" past the priority's target.
   * Read: the turnaround, arrival to final. */
  function updateClock(cell, now) {
    var d = cell.dataset;
    var arrived = parseTime(d.arrived);
    var text = "";
    var overdue = false;
    cell.title = "";
    if (!isNaN(arrived) && d.final) {
      text = duration((parseTime(d.final) - arrived) / 60000);
      cell.title = format(texts.read_in, { duration: text });
    } else if (!isNaN(arrived) && UNREAD.indexOf(d.status) !== -1) {
      var minutes = (now - arrived) / 60000;
      text = duration(minutes);
      overdue = minutes > targetMinutes(cell, d.priority);
      cell.title = overdue ? texts.overdue : "";
    }
    cell.textContent = text;
    cell.classList.toggle("overdue", overdue);
  }

  function updateClocks(root) {
    var now = Date.now();
    (root || document).querySelectorAll("[data-clock]").forEach(function (cell) { updateClock(cell, now); });
  }

  /* The clock of a new row is drawn once the row is in its table, where
   * its targets are (updateClocks). */
  function setClock(cell, item) {
    cell.dataset.arrived = item.arrived_at || "";
    cell.dataset.final = item.final_at || "";
    cell.dataset.priority = item.priority;
    cell.dataset.status = item.status;
  }

  /* Values of a page's server-rendered DICOM fields, made readable. */
  function formatPage(root) {
    root.querySelectorAll("[data-dicom-time]").forEach(function (element) {
      element.textContent = dicomTime(element.getAttribute("data-dicom-time"));
    });
    root.querySelectorAll("[data-timestamp]").forEach(function (element) {
      element.textContent = localTime(element.getAttribute("data-timestamp"));
    });
    root.querySelectorAll("[data-minutes]").forEach(function (element) {
      element.textContent = duration(Number(element.getAttribute("data-minutes")));
    });
    updateClocks(root);
  }

  /* --- one study's fields and actions -------------------------------- */

  var FIELDS = {
    patient_name: function (item, element) {
      if (element.tagName === "A") {
        element.href = "/pacs/studies/" + encodeURIComponent(item.study_instance_uid);
      }
      return item.patient_display_name || "—";
    },
    patient_id: function (item) { return item.patient_id; },
    age_sex: ageSex,
    accession_number: function (item) { return item.accession_number; },
    study_date: function (item) { return item.study_date || ""; },
    study_time: function (item) { return dicomTime(item.study_time); },
    modalities: function (item) { return item.modalities.join("/"); },
    description: function (item) { return item.description; },
    instance_count: function (item) { return String(item.instance_count); },
    referring_physician: function (item) { return item.referring_physician_display_name; },
    priority: function (item) { return badge("priority", item.priority); },
    status: function (item) { return badge("status", item.status); },
    claimed_by: function (item) {
      return item.claimed_by ? format(texts.being_read_by, { name: displayName(item.claimed_by) }) : "";
    },
    assignee: function (item) { return displayName(item.assignee); },
    waiting: function (item, element) { setClock(element, item); }
  };

  function fillFields(root, item) {
    root.querySelectorAll("[data-field]").forEach(function (element) {
      var fill = FIELDS[element.getAttribute("data-field")];
      var value = fill ? fill(item, element) : undefined;
      if (typeof value === "string") {
        element.textContent = value;
      } else if (value) {
        element.replaceChildren(value);
      }
    });
  }

  /* Which actions fit: the API decides, this only spares useless clicks. */
  function showActions(root, item) {
    var unread = UNREAD.indexOf(item.status) !== -1;
    var mine = item.claimed_by === me;
    var shown = {
      claim: unread && !item.claimed_by,
      release: Boolean(item.claimed_by) && (mine || mayReleaseAny),
      assign: unread && !item.assignee,
      unassign: Boolean(item.assignee) && (item.assignee === me || mayAssignAny),
      priority: unread || item.status === "scheduled"
    };
    root.querySelectorAll("[data-action]").forEach(function (control) {
      var action = control.getAttribute("data-action");
      if (action === "priority") {
        control.disabled = !shown.priority || control.dataset.editing !== "on";
        control.toggleAttribute("data-fixed", !shown.priority);  /* read: it no longer changes */
        control.dataset.priority = item.priority;
        if (document.activeElement !== control) {
          control.value = item.priority;
        }
      } else if (Object.prototype.hasOwnProperty.call(shown, action)) {
        control.hidden = !shown[action];
      }
    });
    root.querySelectorAll("[data-edit-priority]").forEach(function (button) {
      button.hidden = !shown.priority;
    });
  }

  /* The priority changes in two steps, never by a stray click, tap or key: its
   * button unlocks the selector (and opens it); a choice, or leaving it, locks it again. */
  function editPriority(button) {
    var select = button.parentElement.querySelector('select[data-action="priority"]');
    select.dataset.editing = "on";
    select.disabled = false;
    select.focus();
    if (typeof select.showPicker === "function") {
      try { select.showPicker(); } catch (error) { /* not from this event: focus is enough */ }
    }
  }

  function lockPriority(select) {
    delete select.dataset.editing;
    select.disabled = true;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-edit-priority]");
    if (button) {
      editPriority(button);
    }
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches('select[data-action="priority"]')) {
      lockPriority(event.target);  /* after the page's own change handler has read the value */
    }
  });
  document.addEventListener("focusout", function (event) {
    var select = event.target;
    if (select.matches && select.matches('select[data-action="priority"]') && select.dataset.editing) {
      window.setTimeout(function () {
        if (document.activeElement !== select) {
          lockPriority(select);
        }
      }, 0);
    }
  });

  function act(action, uid, value) {
    var bodies = {
      claim: [ "claim" ],
      release: [ "release" ],
      assign: [ "assign", { assignee: me } ],
      unassign: [ "assign", { assignee: null } ],
      "assign-to": [ "assign", { assignee: value || null } ],
      priority: [ "priority", { priority: value } ]
    };
    var call = bodies[action];
    return pacs.api("POST", "/pacs/api/studies/" + encodeURIComponent(uid) + "/" + call[0], call[1]);
  }

  function failure(action, error) {
    if (error instanceof pacs.ApiError && error.status === 401) {
      location.assign(pacs.loginUrl());
    }
    var message = error && error.message ? error.message : String(error);
    return action === "claim" && error.status === 409
      ? format(texts.claim_refused, { error: message }) : format(texts.action_failed, { error: message });
  }

  function showMessage(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  pacs.worklist = {
    fillFields: fillFields,
    showActions: showActions,
    act: act,
    failure: failure,
    showMessage: showMessage,
    format: format
  };

  formatPage(document);
  window.setInterval(updateClocks, CLOCK_MS);

  /* --- the worklist page ---------------------------------------------- */

  var table = document.getElementById("worklist");
  if (!table) {
    return;
  }

  var API = "/pacs/api/studies";
  var FILTERS = ["q", "status", "modality", "priority", "assignee", "date", "date_from", "date_to", "referring"];
  var KEPT = FILTERS.concat(["sort", "page", "page_size"]);
  var TYPING_DELAY_MS = 250;
  var form = document.getElementById("worklist-filters");
  var tbody = document.getElementById("worklist-rows");
  var message = document.getElementById("worklist-message");
  var params = paramsOf(location.search);
  var rows = {};          // uid -> <tr>
  var shownOnce = {};     // uid -> true: every study this page has shown, in any view
  var openedAt = parseTime(data.opened_at);  // server time: studies arriving later are new
  var selectedUid = null;
  var ticket = 0;         // the newest request; older answers are dropped
  var loading = false;
  var loadedOnce = false;
  var typingTimer = null;

  function paramsOf(search) {
    var all = new URLSearchParams(search);
    var kept = new URLSearchParams();
    KEPT.forEach(function (name) {
      if (all.get(name)) {
        kept.set(name, all.get(name));
      }
    });
    return kept;
  }

  function queryString() {
    var text = params.toString();
    return text ? "?" + text : "";
  }

  function setParam(name, value) {
    if (value) {
      params.set(name, value);
    } else {
      params.delete(name);
    }
  }

  /* Filters changed: back to page 1, into the URL, and ask again. */
  function applyFilters() {
    params.delete("page");
    showView();
  }

  function showView() {
    history.replaceState(null, "", location.pathname + queryString());
    markPresets();
    markSort();
    syncSortChoice();
    load();
  }

  /* --- the filter form ---------------------------------------------- */

  function ensureOption(select, value) {
    var known = Array.prototype.some.call(select.options, function (option) { return option.value === value; });
    if (!known) {
      select.add(new Option(value, value));
    }
  }

  function syncForm() {
    FILTERS.forEach(function (name) {
      var control = form.elements[name];
      if (!control) {
        return;
      }
      var value = params.get(name) || "";
      if (control.tagName === "SELECT" && value) {
        ensureOption(control, value);
      }
      control.value = value;
    });
    var custom = !params.get("date") && Boolean(params.get("date_from") || params.get("date_to"));
    if (custom) {
      form.elements.date.value = "custom";
    }
    showCustomDates(custom);
    syncSortChoice();
  }

  /* The sort selector follows the sort, chosen there or by a column header. */
  function syncSortChoice() {
    var choice = form.elements.sort;
    var sort = params.get("sort") || "";
    if (!choice) {
      return;
    }
    var known = Array.prototype.some.call(choice.options, function (option) { return option.value === sort; });
    if (!known) {
      var header = table.querySelector('button[data-sort="' + sort.replace(/^-/, "") + '"]');
      choice.add(new Option((header ? header.textContent : sort) + (sort.charAt(0) === "-" ? " ▼" : " ▲"), sort));
    }
    choice.value = sort;
  }

  function showCustomDates(shown) {
    form.querySelectorAll("[data-custom-date]").forEach(function (field) { field.hidden = !shown; });
  }

  function onFilterChange(event) {
    var control = event.target;
    if (control.name === "sort") {
      setParam("sort", control.value);
      params.delete("page");
      showView();
      return;
    }
    if (!control.name || FILTERS.indexOf(control.name) === -1) {
      return;
    }
    if (control.name === "date") {
      var custom = control.value === "custom";
      ["date_from", "date_to"].forEach(function (name) {
        form.elements[name].value = "";
        params.delete(name);
      });
      setParam("date", custom ? "" : control.value);
      showCustomDates(custom);
      if (custom) {
        form.elements.date_from.focus();
      }
    } else if ((params.get(control.name) || "") !== control.value.trim()) {
      setParam(control.name, control.value.trim());
    } else {
      return;  // "change" after the typing delay already applied it
    }
    applyFilters();
  }

  function onTyping(event) {
    if (event.target.type !== "search") {
      return;
    }
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(function () { onFilterChange(event); }, TYPING_DELAY_MS);
  }

  /* Saved views are plain links (bookmarkable); here they apply in place. */
  function onViewLink(event) {
    var link = event.target.closest("a[data-view]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
      return;
    }
    event.preventDefault();
    params = paramsOf(link.search);
    syncForm();
    showView();
  }

  function markPresets() {
    var current = canonical(params);
    document.querySelectorAll(".presets a[data-view]").forEach(function (link) {
      if (canonical(paramsOf(link.search)) === current) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
    });
  }

  function canonical(someParams) {
    return FILTERS.map(function (name) { return name + "=" + (someParams.get(name) || ""); }).join("&");
  }

  /* --- sorting and paging ------------------------------------------- */

  function currentSort() {
    var first = (params.get("sort") || table.dataset.defaultSort).split(",")[0];
    return { column: first.replace(/^-/, ""), descending: first.charAt(0) === "-" };
  }

  function markSort() {
    var sort = currentSort();
    table.querySelectorAll("button[data-sort]").forEach(function (button) {
      var header = button.closest("th");
      if (button.dataset.sort === sort.column) {
        header.setAttribute("aria-sort", sort.descending ? "descending" : "ascending");
      } else {
        header.removeAttribute("aria-sort");
      }
    });
  }

  function onSort(event) {
    var button = event.target.closest("button[data-sort]");
    if (!button) {
      return;
    }
    var sort = currentSort();
    var descending = sort.column === button.dataset.sort && !sort.descending;
    params.set("sort", (descending ? "-" : "") + button.dataset.sort);
    params.delete("page");
    showView();
  }

  function onPage(event) {
    var button = event.target.closest("button[data-page]");
    if (!button) {
      return;
    }
    var page = Number(params.get("page") || 1) + (button.dataset.page === "next" ? 1 : -1);
    setParam("page", page > 1 ? String(page) : "");
    showView();
    window.scrollTo(0, 0);
  }

  function showPager(answer) {
    var pages = Math.max(1, Math.ceil(answer.total / answer.page_size));
    document.getElementById("worklist-page").textContent = format(texts.page_of, { page: answer.page, pages: pages });
    document.getElementById("worklist-count").textContent = format(texts.study_count, { count: answer.total });
    document.getElementById("worklist-updated").textContent =
      format(texts.updated_at, { time: new Date().toLocaleTimeString() });
    document.querySelector('[data-page="previous"]').disabled = answer.page <= 1;
    document.querySelector('[data-page="next"]').disabled = answer.page >= pages;
  }

  /* --- loading and rendering ------------------------------------------ */

  function load() {
    var mine = ++ticket;
    loading = true;
    return pacs.api("GET", API + queryString()).then(function (answer) {
      if (mine === ticket) {
        render(answer);
        if (message.dataset.source === "load") {
          showMessage(message, "");
        }
      }
    }).catch(function (error) {
      if (mine === ticket) {
        showMessage(message, error.status === 401 ? failure("load", error)
          : format(texts.load_failed, { error: error.message }));
        message.dataset.source = "load";
      }
    }).then(function () {
      if (mine === ticket) {
        loading = false;
      }
    });
  }

  function poll() {
    if (!loading && !document.hidden) {
      load();
    }
  }

  function rowFor(item) {
    var uid = item.study_instance_uid;
    var row = rows[uid];
    if (!row) {
      row = document.getElementById("row-template").content.firstElementChild.cloneNode(true);
      row.dataset.uid = uid;
      if (loadedOnce && isNewArrival(item)) {
        row.classList.add("row-new");  // a new arrival: highlighted once
        row.addEventListener("animationend", function () { row.classList.remove("row-new"); }, { once: true });
      }
    }
    shownOnce[uid] = true;
    var signature = JSON.stringify(item);
    if (row.dataset.signature !== signature) {
      row.dataset.signature = signature;
      fillRow(row, item);
    }
    return row;
  }

  /* A study that arrived since this page was opened and that no view of it has
   * shown yet: paging, sorting and filtering bring back older studies, not new ones. */
  function isNewArrival(item) {
    return !shownOnce[item.study_instance_uid] && parseTime(item.arrived_at) > openedAt;
  }

  function fillRow(row, item) {
    fillFields(row, item);
    showActions(row, item);
    row.classList.toggle("is-mine", item.claimed_by === me && Boolean(me));
    row.classList.toggle("is-claimed", Boolean(item.claimed_by) && item.claimed_by !== me);
    row.classList.toggle("priority-stat", item.priority === "stat");
    row.classList.toggle("priority-urgent", item.priority === "urgent");
  }

  /* New answer: rows are updated and moved in place, never rebuilt, so the
   * scroll position, selection and focus survive a refresh. */
  function render(answer) {
    if (!answer.items.length && answer.total > 0 && answer.page > 1) {
      setParam("page", String(Math.ceil(answer.total / answer.page_size)));
      showView();
      return;
    }
    var hadFocus = tbody.contains(document.activeElement);
    var next = {};
    answer.items.forEach(function (item, index) {
      var row = rowFor(item);
      next[item.study_instance_uid] = row;
      if (tbody.children[index] !== row) {
        tbody.insertBefore(row, tbody.children[index] || null);
      }
    });
    while (tbody.children.length > answer.items.length) {
      tbody.removeChild(tbody.lastElementChild);
    }
    if (!answer.items.length) {
      tbody.appendChild(document.getElementById("empty-row").content.firstElementChild.cloneNode(true));
    }
    rows = next;
    loadedOnce = true;
    updateClocks(tbody);
    showPager(answer);
    restoreSelection(hadFocus);
  }

  function restoreSelection(hadFocus) {
    var row = selectedUid && rows[selectedUid];
    if (!row) {
      selectedUid = null;
      var first = tbody.querySelector("tr.study-row");
      if (first) {
        first.tabIndex = 0;  // the table stays reachable with Tab
      }
      return;
    }
    select(row, hadFocus && !tbody.contains(document.activeElement));
  }

  function select(row, focus) {
    tbody.querySelectorAll("tr.study-row").forEach(function (other) {
      other.tabIndex = -1;
      other.classList.remove("is-selected");
      other.removeAttribute("aria-current");
    });
    row.tabIndex = 0;
    row.classList.add("is-selected");
    row.setAttribute("aria-current", "true");
    selectedUid = row.dataset.uid;
    if (focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  /* --- actions and keys ---------------------------------------------- */

  function perform(action, uid, value) {
    if (!uid) {
      return;
    }
    act(action, uid, value).then(function (item) {
      showMessage(message, "");
      var row = rows[uid];
      if (row) {
        row.dataset.signature = JSON.stringify(item);
        fillRow(row, item);
        updateClocks(row);
        if (document.activeElement === document.body) {
          select(row, true);  // the clicked button may have been hidden
        }
      }
      load();
    }).catch(function (error) {
      showMessage(message, failure(action, error));
      message.dataset.source = "action";
      load();
    });
  }

  function onRowClick(event) {
    var row = event.target.closest("tr.study-row");
    if (!row) {
      return;
    }
    var button = event.target.closest("button[data-action]");
    if (button) {
      perform(button.dataset.action, row.dataset.uid);
    }
    if (!event.target.closest("a, button, select")) {
      select(row, true);
    }
  }

  function onRowChange(event) {
    var control = event.target;
    var row = control.closest("tr.study-row");
    if (row && control.dataset.action === "priority" && control.dataset.editing) {
      perform("priority", row.dataset.uid, control.value);
    }
  }

  function move(step) {
    var all = Array.prototype.slice.call(tbody.querySelectorAll("tr.study-row"));
    if (!all.length) {
      return;
    }
    var index = all.indexOf(rows[selectedUid]);
    var next = index === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[next], true);
  }

  function openSelected() {
    if (selectedUid) {
      location.assign("/pacs/studies/" + encodeURIComponent(selectedUid));
    }
  }

  function onKey(event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    var typing = target.closest && target.closest("input, select, textarea, [contenteditable]");
    if (typing) {
      return;
    }
    var inTable = tbody.contains(target);
    var onRow = target.matches && target.matches("tr.study-row");
    var keys = {
      j: function () { move(1); },
      k: function () { move(-1); },
      ArrowDown: inTable && function () { move(1); },
      ArrowUp: inTable && function () { move(-1); },
      Enter: onRow && openSelected,
      c: function () { perform("claim", selectedUid); },
      r: function () { perform("release", selectedUid); },
      "/": function () { form.elements.q.focus(); }
    };
    var handler = keys[event.key];
    if (handler) {
      event.preventDefault();
      handler();
    }
  }

  form.addEventListener("change", onFilterChange);
  form.addEventListener("input", onTyping);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  form.querySelectorAll("[data-no-js]").forEach(function (element) { element.hidden = true; });
  document.addEventListener("click", onViewLink);
  table.querySelector("thead").addEventListener("click", onSort);
  tbody.addEventListener("click", onRowClick);
  tbody.addEventListener("change", onRowChange);
  tbody.addEventListener("focusin", function (event) {
    if (event.target.matches("tr.study-row")) {
      select(event.target, false);
    }
  });
  document.querySelector(".pager").addEventListener("click", onPage);
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", poll);

  syncForm();
  showView();
  window.setInterval(poll, data.poll_ms || 3000);
}());
