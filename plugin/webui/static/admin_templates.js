/* The report templates page (admin_templates.html): each form is sent to
 * the templates JSON API, whose checks answer; a new template reloads the
 * page, which then lists it. Vanilla, no build; pacs.js first. */
(function () {
  "use strict";

  var API = "/pacs/api/report-templates";
  var texts;

  function templateBody(form) {
    var sections = {};
    form.querySelectorAll("[data-section]").forEach(function (field) {
      sections[field.name] = field.value;
    });
    var body = {name: form.elements.name.value, modality: form.elements.modality.value,
                body_part: form.elements.body_part.value, sections: sections};
    if (form.elements.disabled) {
      body.disabled = form.elements.disabled.checked;
    }
    return body;
  }

  function save(event) {
    event.preventDefault();
    var form = event.target;
    var id = form.getAttribute("data-template-id");
    var state = form.querySelector(".template-state");
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    state.textContent = "";
    pacs.api(id ? "PUT" : "POST", id ? API + "/" + id : API, templateBody(form)).then(function () {
      if (id) {
        state.textContent = texts.saved;
      } else {
        location.reload();
      }
    }).catch(function (error) {
      state.textContent = texts.failed.replace("%(error)s", error.message);
    }).then(function () {
      button.disabled = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    texts = pacs.pageData().texts;
    document.querySelectorAll("form.template-form").forEach(function (form) {
      form.addEventListener("submit", save);
    });
  });
}());
