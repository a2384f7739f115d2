/* The job page's schedule form: show the fields of the chosen schedule type, and keep
   the "Next runs" panel in step with what the form holds, by asking the admin's preview
   endpoint (the server validates with the same trigger module that saving uses). */
"use strict";

(function () {
  const form = document.getElementById("schedule-form");
  const panel = document.getElementById("schedule-preview");
  if (!form || !panel) {
    return;
  }
  const previewUrl = form.dataset.previewUrl;
  const DEBOUNCE_MS = 250;
  let timer = null;
  let latestRequest = 0;

  function selectedMode() {
    const checked = form.querySelector('input[name="trigger"]:checked');
    return checked ? checked.value : null;
  }

  function showFieldsOfMode() {
    const mode = selectedMode();
    form.querySelectorAll(".scheduler-mode").forEach(function (group) {
      group.hidden = !group.dataset.modes.split(" ").includes(mode);
    });
  }

  function query() {
    const params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrfmiddlewaretoken") {
        params.append(name, value);
      }
    });
    return params.toString();
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function showTimes(data) {
    panel.querySelector(".scheduler-preview-description").textContent = data.description;
    panel.querySelector(".scheduler-preview-zone").textContent = data.timezone;
    const list = panel.querySelector(".scheduler-preview-times");
    list.replaceChildren();
    if (data.times.length === 0) {
      list.append(element("li", "scheduler-muted", "No upcoming runs."));
    }
    data.times.forEach(function (time) {
      const item = element("li", "", time.display);
      if (time.warning) {
        item.append(element("span", "scheduler-dst", time.warning));
      }
      list.append(item);
    });
    panel.querySelector(".scheduler-preview-errors").replaceChildren();
    panel.dataset.state = "ready";
  }

  function showErrors(errors) {
    const list = panel.querySelector(".scheduler-preview-errors");
    list.replaceChildren();
    Object.entries(errors).forEach(function ([field, messages]) {
      const label = field === "__all__" ? "" : field.replace(/_/g, " ") + ": ";
      messages.forEach(function (message) {
        list.append(element("li", "", label + message));
      });
    });
    panel.dataset.state = "invalid";
  }

  async function refresh() {
    const request = ++latestRequest;
    panel.dataset.state = "loading";
    try {
      const response = await fetch(previewUrl + "?" + query(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const data = await response.json();
      if (request !== latestRequest) {
        return; // an answer to an older edit: a newer request is on its way
      }
      if (data.valid) {
        showTimes(data);
      } else {
        showErrors(data.errors);
      }
    } catch (error) {
      if (request === latestRequest) {
        showErrors({ __all__: ["The preview is not available: " + error.message] });
      }
    }
  }

  function schedule() {
    if (!previewUrl) {
      return; // a read-only page: nothing can change
    }
    clearTimeout(timer);
    timer = setTimeout(refresh, DEBOUNCE_MS);
  }

  form.addEventListener("change", function (event) {
    if (event.target.name === "trigger") {
      showFieldsOfMode();
    }
    schedule();
  });
  form.addEventListener("input", schedule);
  showFieldsOfMode();
  schedule();
})();
