/* The DICOM nodes page: C-ECHO buttons, query form, retrieve with job progress.
 * Node and study text from remote nodes goes into the page with textContent only. */
(function () {
  "use strict";

  function labels() {
    return document.getElementById("retrieve-labels").dataset;
  }

  function echo(button) {
    var name = button.dataset.echo;
    var out = document.querySelector('[data-echo-result="' + CSS.escape(name) + '"]');
    out.textContent = labels().echoTesting;
    pacs.api("POST", "/pacs/api/nodes/" + encodeURIComponent(name) + "/echo").then(function (answer) {
      out.textContent = answer.ok ? labels().echoOk : answer.message;
      out.className = "echo-result " + (answer.ok ? "ok" : "failed");
    }).catch(function (error) {
      out.textContent = error.message;
      out.className = "echo-result failed";
    });
  }

  function follow(job, cell) {
    pacs.api("GET", "/pacs/api/jobs/" + encodeURIComponent(job)).then(function (state) {
      if (state.state === "Success") {
        cell.textContent = labels().done;
      } else if (state.state === "Failure") {
        cell.textContent = labels().failed + ": " + state.error;
      } else {
        cell.textContent = labels().running + " " + state.progress + "%";
        setTimeout(function () { follow(job, cell); }, 1000);
      }
    }).catch(function (error) { cell.textContent = error.message; });
  }

  function retrieve(node, uid, cell) {
    cell.textContent = labels().running;
    pacs.api("POST", "/pacs/api/nodes/" + encodeURIComponent(node) + "/retrieve", {study_instance_uid: uid})
      .then(function (answer) {
        if (answer.job) { follow(answer.job, cell); } else { cell.textContent = labels().done; }
      })
      .catch(function (error) { cell.textContent = labels().failed + ": " + error.message; });
  }

  function row(node, study) {
    var tr = document.createElement("tr");
    ["PatientName", "PatientID", "AccessionNumber", "StudyDate", "ModalitiesInStudy", "StudyDescription"]
      .forEach(function (key) {
        var td = document.createElement("td");
        td.textContent = study[key] || "";
        tr.appendChild(td);
      });
    var cell = document.createElement("td");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.textContent = labels().retrieve;
    button.addEventListener("click", function () { retrieve(node, study.StudyInstanceUID, cell); });
    cell.appendChild(button);
    tr.appendChild(cell);
    return tr;
  }

  function query(event) {
    event.preventDefault();
    var form = event.target;
    var filters = {};
    ["patient_id", "patient_name", "accession_number", "study_date", "modality"].forEach(function (name) {
      if (form.elements[name].value.trim()) { filters[name] = form.elements[name].value.trim(); }
    });
    var node = form.elements.node.value;
    var status = document.getElementById("query-status");
    var table = document.getElementById("query-results");
    status.textContent = labels().searching;
    pacs.api("POST", "/pacs/api/nodes/" + encodeURIComponent(node) + "/query", filters).then(function (answer) {
      var body = table.querySelector("tbody");
      body.replaceChildren.apply(body, answer.items.map(function (study) { return row(node, study); }));
      table.hidden = false;
      status.textContent = labels().found + " " + answer.items.length;
    }).catch(function (error) { status.textContent = error.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-echo]").forEach(function (button) {
      button.addEventListener("click", function () { echo(button); });
    });
    var form = document.getElementById("query-form");
    if (form) { form.addEventListener("submit", query); }
  });
})();
