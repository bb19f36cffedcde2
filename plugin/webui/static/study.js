/* The study page: reading actions (claim, release, assign, priority) on
 * the study of #study-actions, with pacs.worklist's helpers (worklist.js,
 * loaded first). The page's state comes from page_data.study and then from
 * each action's answer. */
(function () {
  "use strict";

  var worklist = pacs.worklist;
  var actions = document.getElementById("study-actions");
  var message = document.getElementById("study-message");
  var state = document.querySelector(".study-state");
  var uid = actions.dataset.uid;

  function show(item) {
    worklist.fillFields(state, item);
    worklist.fillFields(document.querySelector(".facts"), item);
    worklist.showActions(actions, item);
  }

  function perform(action, value) {
    worklist.act(action, uid, value).then(function (item) {
      worklist.showMessage(message, "");
      show(item);
    }).catch(function (error) {
      worklist.showMessage(message, worklist.failure(action, error));
    });
  }

  actions.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (button) {
      var chosen = document.getElementById("assign-to");
      perform(button.dataset.action, chosen ? chosen.value : "");
    }
  });

  actions.addEventListener("change", function (event) {
    if (event.target.dataset.action === "priority" && event.target.dataset.editing) {
      perform("priority", event.target.value);
    }
  });

  show(pacs.pageData().study);
}());
