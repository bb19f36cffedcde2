/* Study page: send the study to a DICOM node and follow the Orthanc job. */
(function () {
  "use strict";

  function follow(panel, job, status) {
    pacs.api("GET", "/pacs/api/jobs/" + encodeURIComponent(job)).then(function (state) {
      if (state.state === "Success") {
        status.textContent = panel.dataset.sent;
      } else if (state.state === "Failure") {
        status.textContent = panel.dataset.failed + ": " + state.error;
      } else {
        status.textContent = panel.dataset.sending + " " + state.progress + "%";
        setTimeout(function () { follow(panel, job, status); }, 1000);
      }
    }).catch(function (error) { status.textContent = error.message; });
  }

  function send(panel) {
    var node = document.getElementById("send-node").value;
    var status = document.getElementById("send-status");
    status.textContent = panel.dataset.sending;
    pacs.api("POST", "/pacs/api/studies/" + encodeURIComponent(panel.dataset.uid) + "/send", {node: node})
      .then(function (answer) { follow(panel, answer.job, status); })
      .catch(function (error) { status.textContent = panel.dataset.failed + ": " + error.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("send-panel");
    if (!panel) { return; }
    var select = document.getElementById("send-node");
    var button = document.getElementById("send-button");
    pacs.api("GET", "/pacs/api/nodes").then(function (answer) {
      answer.items.forEach(function (node) {
        var option = document.createElement("option");
        option.value = node.name;
        option.textContent = node.name + " (" + node.aet + ")";
        select.appendChild(option);
      });
      if (!answer.items.length) {
        button.disabled = true;
        document.getElementById("send-status").textContent = panel.dataset.none;
      }
    });
    button.addEventListener("click", function () { send(panel); });
  });
})();
