// The recording page's sound event annotations: draw a box on the spectrogram ("Annotate"), tag it, edit, move,
// delete, its history, "find similar", and confirming a detection, all through /api/v1/sound-event-annotations/.
// The page draws the saved boxes itself; after a change it is loaded again. No framework.
"use strict";

(function () {
  // A press that moves less than this (px) is a click, not a drag.
  const DRAG_PX = 4;
  const CLICK_AFTER_DRAG_MS = 400;
  const SPECIES_DELAY_MS = 150;
  const MODE_KEY = "echoroo.annotate";
  const LABELS_KEY = "echoroo.annotation-labels";
  const DETECTIONS_KEY = "echoroo.detections";
  const DETECTION_LABELS_KEY = "echoroo.detection-labels";

  const clamp = (value, low, high) => Math.min(Math.max(value, low), high);
  const round = (value, digits) => Number(value.toFixed(digits));

  function start() {
    const viewer = document.querySelector("[data-annotator]");
    if (!viewer) return;
    const spectrogram = viewer.querySelector(".spectrogram");
    const panel = viewer.querySelector(".annotation-panel");
    const form = panel.querySelector("form");
    const modeButton = viewer.querySelector(".annotate-mode");
    const hint = viewer.querySelector(".annotate-hint");
    const saved = JSON.parse(document.getElementById("annotations-data").textContent);
    const view = {
      from: Number(spectrogram.dataset.viewFrom),
      to: Number(spectrogram.dataset.viewTo),
      topHz: Number(spectrogram.dataset.topHz),
      bottomHz: Number(spectrogram.dataset.bottomHz || 0),
      nyquistHz: Number(spectrogram.dataset.nyquistHz),
      duration: Number(spectrogram.dataset.duration),
    };
    const span = view.to - view.from;
    const band = view.topHz - view.bottomHz;
    const api = viewer.dataset.api;
    const csrf = () => form.querySelector("input[name=csrfmiddlewaretoken]").value;
    const field = (name) => form.elements.namedItem(name);
    const hintText = hint.textContent;

    // --- Where the mouse is: seconds and Hz under it; where a box goes: percent of the view (its time span, and
    // its band: topHz at the top edge down to bottomHz). ---------------------------------------------------------
    function pointAt(event) {
      const rect = spectrogram.getBoundingClientRect();
      const x = clamp((event.clientX - rect.left) / rect.width, 0, 1);
      const y = clamp((event.clientY - rect.top) / rect.height, 0, 1);
      return { clientX: event.clientX, clientY: event.clientY, x, y, time: view.from + x * span, hz: view.bottomHz + (1 - y) * band };
    }

    function place(element, box) {
      const left = clamp(box.start_time, view.from, view.to);
      const right = clamp(box.end_time, view.from, view.to);
      element.style.left = (100 * (left - view.from)) / span + "%";
      element.style.width = (100 * Math.max(right - left, 0)) / span + "%";
      if (box.low_freq === null || box.high_freq === null) {
        element.style.top = "0%";
        element.style.height = "100%";
      } else {
        const high = clamp(box.high_freq, view.bottomHz, view.topHz);
        const low = clamp(box.low_freq, view.bottomHz, high);
        element.style.top = (100 * (view.topHz - high)) / band + "%";
        element.style.height = (100 * (high - low)) / band + "%";
      }
    }

    // --- The request helper: JSON in and out, the CSRF token, the API's errors as {field: message}. -------
    async function send(method, url, body) {
      const response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      let data = null;
      if (response.status !== 204) {
        try {
          data = await response.json();
        } catch (error) {
          data = null;
        }
      }
      return { ok: response.ok, status: response.status, data };
    }

    function errorsOf(result) {
      if (result.status === 403) return { detail: (result.data && result.data.detail) || "You may not change this annotation." };
      if (!result.data || typeof result.data !== "object") return { detail: "The server answered " + result.status + "." };
      const errors = {};
      for (const [name, messages] of Object.entries(result.data)) {
        errors[name] = Array.isArray(messages) ? messages.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ") : String(messages);
      }
      return errors;
    }

    // Back to the page, on the minute holding `startS`, with the box picked out.
    function reload(startS, annotationUuid) {
      const url = new URL(window.location.href);
      if (startS !== undefined && (startS < view.from || startS >= view.to)) url.searchParams.set("t", String(startS));
      if (annotationUuid) url.searchParams.set("annotation", annotationUuid);
      else url.searchParams.delete("annotation");
      url.hash = "";
      window.location.assign(url.toString());
    }

    // --- Annotate mode: a drag on the spectrogram draws a box. -------------------------------------------
    function setMode(on) {
      viewer.classList.toggle("annotating", on);
      modeButton.setAttribute("aria-pressed", on ? "true" : "false");
      modeButton.classList.toggle("primary", on);
      hint.textContent = on ? "Drag on the spectrogram to draw a box around a call; Escape cancels." : hintText;
      try {
        window.sessionStorage.setItem(MODE_KEY, on ? "1" : "");
      } catch (error) {
        // Storage refused (private mode): the mode just is not remembered.
      }
    }
    const annotating = () => viewer.classList.contains("annotating");
    modeButton.addEventListener("click", () => setMode(!annotating()));

    // What a press on the spectrogram is doing: drawing a new box, or moving a saved one. The pointer is captured
    // once it has moved (a press that does not move stays a click on what is under it).
    let gesture = null;
    let gestureEndedAt = 0;

    spectrogram.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      const onBox = event.target.closest(".annotation-box:not(.draft)");
      if (annotating()) {
        gesture = { kind: "draw", from: pointAt(event), element: null, pointer: event.pointerId };
      } else if (onBox && saved[onBox.dataset.annotation] && saved[onBox.dataset.annotation].can_change) {
        const box = saved[onBox.dataset.annotation];
        gesture = { kind: "move", from: pointAt(event), element: onBox, box, result: box, pointer: event.pointerId };
      } else {
        return;
      }
      event.preventDefault();
    });

    spectrogram.addEventListener("pointermove", (event) => {
      if (!gesture || event.pointerId !== gesture.pointer) return;
      const to = pointAt(event);
      if (!gesture.started) {
        if (Math.abs(to.clientX - gesture.from.clientX) + Math.abs(to.clientY - gesture.from.clientY) < DRAG_PX) return;
        gesture.started = true;
        spectrogram.setPointerCapture(event.pointerId);
      }
      if (gesture.kind === "draw") {
        if (!gesture.element) {
          closePanel();
          gesture.element = draftBox();
        }
        place(gesture.element, drawnBox(gesture.from, to));
      } else {
        gesture.result = movedBox(gesture.box, gesture.from, to);
        gesture.element.classList.add("moving");
        place(gesture.element, gesture.result);
      }
    });

    // The end of a press: `event` is where it ended, or null when it is called off (Escape, the browser).
    function endGesture(event) {
      const done = gesture;
      gesture = null;
      if (!done.started) return; // a click: the click handler opens what was clicked
      gestureEndedAt = Date.now();
      if (spectrogram.hasPointerCapture(done.pointer)) spectrogram.releasePointerCapture(done.pointer);
      if (done.kind === "draw") {
        const box = event ? drawnBox(done.from, pointAt(event)) : null;
        if (!box || box.end_time <= box.start_time || box.high_freq <= box.low_freq) {
          removeDraft();
          return;
        }
        openNew(box);
      } else {
        done.element.classList.remove("moving");
        if (!event) {
          place(done.element, done.box);
          return;
        }
        openExisting(done.box.uuid, done.result);
      }
    }
    spectrogram.addEventListener("pointerup", (event) => {
      if (gesture && event.pointerId === gesture.pointer) endGesture(event);
    });
    spectrogram.addEventListener("pointercancel", (event) => {
      if (gesture && event.pointerId === gesture.pointer) endGesture(null);
    });

    function drawnBox(from, to) {
      return {
        start_time: round(Math.min(from.time, to.time), 3),
        end_time: round(Math.max(from.time, to.time), 3),
        low_freq: Math.round(Math.min(from.hz, to.hz)),
        high_freq: Math.round(Math.max(from.hz, to.hz)),
      };
    }

    // A saved box dragged by the mouse: the same length and band, shifted (a box without a band moves in time only).
    function movedBox(box, from, to) {
      const length = box.end_time - box.start_time;
      const startS = clamp(box.start_time + (to.time - from.time), 0, Math.max(view.duration - length, 0));
      const moved = { ...box, start_time: round(startS, 3), end_time: round(startS + length, 3) };
      if (box.low_freq !== null && box.high_freq !== null) {
        const band = box.high_freq - box.low_freq;
        const low = clamp(box.low_freq + (to.hz - from.hz), 0, Math.max(view.nyquistHz - band, 0));
        moved.low_freq = Math.round(low);
        moved.high_freq = Math.round(low + band);
      }
      return moved;
    }

    function draftBox() {
      removeDraft();
      const element = document.createElement("div");
      element.className = "annotation-box draft";
      element.setAttribute("aria-hidden", "true");
      spectrogram.appendChild(element);
      return element;
    }
    function removeDraft() {
      spectrogram.querySelectorAll(".annotation-box.draft").forEach((element) => element.remove());
    }

    // Clicking a box (or pressing Enter on it, or "open" in the list) opens it.
    viewer.addEventListener("click", (event) => {
      const opener = event.target.closest(".annotation-box[data-annotation]");
      if (!opener) return;
      event.preventDefault();
      // The click that ends a drag is not one.
      if (Date.now() - gestureEndedAt < CLICK_AFTER_DRAG_MS) return;
      openExisting(opener.dataset.annotation);
    });
    document.querySelectorAll(".open-annotation").forEach((button) => {
      button.addEventListener("click", () => {
        openExisting(button.dataset.annotation);
        panel.scrollIntoView({ block: "nearest" });
      });
    });
    viewer.querySelector(".annotate-by-numbers").addEventListener("click", () => {
      const startS = view.from;
      openNew({ start_time: startS, end_time: round(Math.min(startS + 1, view.to), 3), low_freq: null, high_freq: null });
      draftBox();
      place(spectrogram.querySelector(".annotation-box.draft"), readBox());
      field("start_time").focus();
    });

    // --- The form ------------------------------------------------------------------------------------------
    let editing = null; // null: a new box; else the saved annotation's uuid
    const chips = form.querySelector(".species-chips");
    const speciesInput = form.querySelector("#annotation-species-input");
    const options = form.querySelector("#annotation-species-options");
    const history = form.querySelector(".annotation-history");
    const historyButton = form.querySelector(".show-history");
    const labelsByText = new Map(); // what the type-ahead shows -> the model's label

    function fillBox(box) {
      field("start_time").value = box.start_time;
      field("end_time").value = box.end_time;
      field("low_freq").value = box.low_freq === null ? "" : box.low_freq;
      field("high_freq").value = box.high_freq === null ? "" : box.high_freq;
    }

    function readBox() {
      const number = (name) => {
        const text = field(name).value.trim();
        return text === "" ? null : Number(text);
      };
      return { start_time: number("start_time"), end_time: number("end_time"), low_freq: number("low_freq"), high_freq: number("high_freq") };
    }

    // The API's 400 names the fields: each message goes beside its field; the list above the form says what was
    // not saved (and holds the messages that belong to no field: a 403, the server's own).
    function showErrors(errors) {
      const list = form.querySelector(".annotation-errors");
      list.replaceChildren();
      form.querySelectorAll(".field-error").forEach((node) => {
        node.textContent = "";
      });
      form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
      const named = [];
      for (const [name, message] of Object.entries(errors || {})) {
        const slot = form.querySelector('.field-error[data-error-for="' + name + '"]');
        const label = name.replace("_", " ");
        if (slot) {
          slot.textContent = label + ": " + message;
          named.push(label);
          const input = name === "species" ? speciesInput : field(name);
          if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
        } else {
          const item = document.createElement("li");
          item.textContent = name === "detail" || name === "non_field_errors" ? message : label + ": " + message;
          list.appendChild(item);
        }
      }
      if (named.length) {
        const item = document.createElement("li");
        item.textContent = "Not saved: see " + named.join(", ") + " below.";
        list.prepend(item);
      }
    }

    // A field's message goes once it is changed; the summary once no field has one.
    function clearError(name) {
      const slot = form.querySelector('.field-error[data-error-for="' + name + '"]');
      if (!slot || !slot.textContent) return;
      slot.textContent = "";
      const input = name === "species" ? speciesInput : field(name);
      if (input && input.removeAttribute) input.removeAttribute("aria-invalid");
      if (![...form.querySelectorAll(".field-error")].some((node) => node.textContent)) {
        const summary = form.querySelector(".annotation-errors li");
        if (summary && summary.textContent.startsWith("Not saved: see")) summary.remove();
      }
    }
    form.addEventListener("input", (event) => {
      if (event.target.name) clearError(event.target.name);
    });

    function addChip(label, text) {
      if (!label || [...chips.children].some((chip) => chip.dataset.label === label)) return;
      const chip = document.createElement("li");
      chip.dataset.label = label;
      const name = document.createElement("span");
      name.textContent = text || label.replace("_", " · ");
      name.title = label;
      chip.appendChild(name);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-species";
      remove.textContent = "×";
      remove.setAttribute("aria-label", "remove " + (text || label));
      remove.addEventListener("click", () => {
        chip.remove();
        clearError("species");
      });
      chip.appendChild(remove);
      chips.appendChild(chip);
      clearError("species");
    }

    // What was typed becomes a species: the label the type-ahead offered for it, else the text as written
    // (the API knows scientific and common names and eBird codes, and says which it does not).
    function takeTypedSpecies() {
      const text = speciesInput.value.trim();
      if (!text) return;
      const label = labelsByText.get(text) || text;
      addChip(label, labelsByText.has(text) ? text.replace(/ \(.*\)$/, "") : text);
      speciesInput.value = "";
      options.replaceChildren();
    }

    let speciesTimer = null;
    let speciesAsked = "";
    speciesInput.addEventListener("input", () => {
      const text = speciesInput.value.trim();
      if (labelsByText.has(text)) {
        takeTypedSpecies(); // picked from the list
        return;
      }
      window.clearTimeout(speciesTimer);
      if (text.length < 2) return;
      speciesTimer = window.setTimeout(() => suggest(text), SPECIES_DELAY_MS);
    });
    async function suggest(text) {
      speciesAsked = text;
      let found = [];
      try {
        const response = await fetch(viewer.dataset.speciesUrl + "?" + new URLSearchParams({ q: text }), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) found = await response.json();
      } catch (error) {
        return;
      }
      if (speciesAsked !== text) return; // a later keystroke asked again
      options.replaceChildren();
      for (const row of found) {
        const shown = row.common_name === row.scientific_name ? row.common_name : row.common_name + " (" + row.scientific_name + ")";
        labelsByText.set(shown, row.label);
        const option = document.createElement("option");
        option.value = shown;
        options.appendChild(option);
      }
      options.dataset.for = text;
    }
    speciesInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        takeTypedSpecies();
      }
    });
    form.querySelector(".add-species").addEventListener("click", takeTypedSpecies);

    // "key: value" lines -> [{key, value}]; a line without a colon is an error named as the API would.
    function readTags() {
      const tags = [];
      for (const line of field("tags").value.split("\n")) {
        if (!line.trim()) continue;
        const at = line.indexOf(":");
        if (at < 0) throw { tags: "write each tag as key: value (“" + line.trim() + "” has no colon)" };
        tags.push({ key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() });
      }
      return tags;
    }

    function openPanel(title) {
      panel.hidden = false;
      panel.querySelector("h3").textContent = title;
      showErrors(null);
      history.hidden = true;
      history.replaceChildren();
      historyButton.setAttribute("aria-expanded", "false");
      speciesInput.value = "";
      options.replaceChildren();
    }

    function closePanel() {
      panel.hidden = true;
      editing = null;
      removeDraft();
      spectrogram.querySelectorAll(".annotation-box.editing").forEach((element) => {
        element.classList.remove("editing");
        const box = saved[element.dataset.annotation];
        if (box) place(element, box);
      });
    }

    function setReadOnly(readOnly, author) {
      form.querySelectorAll("input:not([type=hidden]), textarea, .add-species, .remove-species").forEach((node) => {
        node.disabled = readOnly;
      });
      form.classList.toggle("read-only", readOnly);
      form.querySelector(".save-annotation").hidden = readOnly;
      const note = form.querySelector(".annotation-readonly");
      note.hidden = !readOnly;
      note.textContent = readOnly ? "Only " + (author || "its author") + " or staff may change this annotation." : "";
    }

    function openNew(box) {
      editing = null;
      openPanel("New annotation");
      fillBox(box);
      chips.replaceChildren();
      field("tags").value = "";
      field("notes").value = "";
      form.querySelector(".annotation-meta").textContent = "drawn by you, not saved yet";
      form.querySelector(".annotation-moved").hidden = true;
      form.querySelector(".find-similar").hidden = true;
      historyButton.hidden = true;
      form.querySelector(".delete-annotation").hidden = true;
      setReadOnly(false);
      speciesInput.focus();
    }

    function openExisting(uuid, movedTo) {
      const annotation = saved[uuid];
      if (!annotation) return;
      removeDraft();
      spectrogram.querySelectorAll(".annotation-box.editing").forEach((element) => {
        if (element.dataset.annotation !== uuid) {
          element.classList.remove("editing");
          place(element, saved[element.dataset.annotation]);
        }
      });
      editing = uuid;
      openPanel("Annotation");
      fillBox(movedTo || annotation);
      chips.replaceChildren();
      annotation.species.forEach((label, i) => addChip(label, annotation.species_names[i]));
      field("tags").value = annotation.tags.map((tag) => tag.key + ": " + tag.value).join("\n");
      field("notes").value = annotation.notes;
      let meta = "by " + (annotation.created_by || "someone") + ", " + annotation.created_at;
      if (annotation.edited) meta += " · changed by " + (annotation.updated_by || "someone") + ", " + annotation.updated_at;
      if (annotation.source !== "drawn") meta += " · " + annotation.source;
      form.querySelector(".annotation-meta").textContent = meta;
      form.querySelector(".annotation-moved").hidden = !movedTo;
      const similar = form.querySelector(".find-similar");
      similar.hidden = false;
      similar.href = annotation.similar_url;
      historyButton.hidden = false;
      form.querySelector(".delete-annotation").hidden = !annotation.can_change;
      setReadOnly(!annotation.can_change, annotation.created_by);
      const element = spectrogram.querySelector('.annotation-box[data-annotation="' + uuid + '"]');
      if (element) element.classList.add("editing");
    }

    // Typing numbers moves the box being edited (or drawn) with them.
    form.querySelector(".annotation-box-fields").addEventListener("input", () => {
      const element = editing
        ? spectrogram.querySelector('.annotation-box[data-annotation="' + editing + '"]')
        : spectrogram.querySelector(".annotation-box.draft");
      const box = readBox();
      if (element && box.start_time !== null && box.end_time !== null && box.end_time > box.start_time) place(element, box);
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      takeTypedSpecies();
      let body;
      try {
        body = { ...readBox(), species: [...chips.children].map((chip) => chip.dataset.label), tags: readTags(), notes: field("notes").value };
      } catch (errors) {
        showErrors(errors);
        return;
      }
      for (const name of ["start_time", "end_time"]) {
        if (body[name] === null || Number.isNaN(body[name])) {
          showErrors({ [name]: "is required" });
          return;
        }
      }
      const saveButton = form.querySelector(".save-annotation");
      saveButton.disabled = true;
      const result = editing
        ? await send("PATCH", api + editing + "/", body)
        : await send("POST", api, { recording: viewer.dataset.recording, ...body });
      saveButton.disabled = false;
      if (!result.ok) {
        showErrors(errorsOf(result));
        return;
      }
      reload(result.data.start_time, result.data.uuid);
    });

    form.querySelector(".cancel-annotation").addEventListener("click", closePanel);

    form.querySelector(".delete-annotation").addEventListener("click", async () => {
      const annotation = saved[editing];
      if (!annotation) return;
      const what = annotation.species_names.join(", ") || "this box";
      if (!window.confirm("Delete the annotation " + what + " (" + annotation.start_time + "–" + annotation.end_time + " s)? Its history is kept.")) return;
      const result = await send("DELETE", api + editing + "/");
      if (!result.ok) {
        showErrors(errorsOf(result));
        return;
      }
      reload();
    });

    historyButton.addEventListener("click", async () => {
      if (!history.hidden) {
        history.hidden = true;
        historyButton.setAttribute("aria-expanded", "false");
        return;
      }
      const result = await send("GET", api + editing + "/history/");
      if (!result.ok) {
        showErrors(errorsOf(result));
        return;
      }
      history.replaceChildren(...result.data.map(historyItem));
      history.hidden = false;
      historyButton.setAttribute("aria-expanded", "true");
    });

    // One change as it reads: "2026-05-01 10:02 changed by anna: end 3.2 → 3.6 s; +call_type: song".
    const pad = (n) => String(n).padStart(2, "0");
    function stamp(text) {
      const at = new Date(text);
      if (Number.isNaN(at.getTime())) return text;
      return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " " + pad(at.getHours()) + ":" + pad(at.getMinutes());
    }
    // A stored tag "key:value" as people read it: a species by its common name, a free tag as "key: value".
    function tagText(tag) {
      const at = tag.indexOf(":");
      const key = tag.slice(0, at);
      const value = tag.slice(at + 1);
      if (key === "species") return value.includes("_") ? value.slice(value.indexOf("_") + 1) : value;
      return key + ": " + value;
    }
    function historyItem(change) {
      const item = document.createElement("li");
      let text = stamp(change.at) + " " + change.action + " by " + (change.by || "someone");
      const before = change.before || {};
      const after = change.after || {};
      const parts = [];
      if (change.action === "created") {
        parts.push(after.start_time + "–" + after.end_time + " s");
        parts.push(after.low_freq === null ? "whole band" : after.low_freq + "–" + after.high_freq + " Hz");
        if (after.tags && after.tags.length) parts.push(after.tags.map(tagText).join(", "));
      } else if (change.action === "changed") {
        const units = { start_time: " s", end_time: " s", low_freq: " Hz", high_freq: " Hz" };
        for (const name of Object.keys(units)) {
          if (before[name] !== after[name]) parts.push(name.replace("_", " ") + " " + before[name] + " → " + after[name] + units[name]);
        }
        const had = new Set(before.tags || []);
        const has = new Set(after.tags || []);
        (after.tags || []).filter((tag) => !had.has(tag)).forEach((tag) => parts.push("+ " + tagText(tag)));
        (before.tags || []).filter((tag) => !has.has(tag)).forEach((tag) => parts.push("− " + tagText(tag)));
        if (before.notes !== after.notes) parts.push("notes changed");
      }
      if (parts.length) text += ": " + parts.join("; ");
      item.textContent = text;
      return item;
    }

    // --- Confirming a detection: the row's window (and species) becomes an annotation. --------------------
    document.querySelectorAll("form.confirm-detection").forEach((confirmForm) => {
      confirmForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = confirmForm.querySelector("button");
        const error = confirmForm.querySelector(".confirm-error");
        button.disabled = true;
        error.textContent = "";
        const body = {
          clip_prediction: confirmForm.elements.namedItem("clip_prediction").value,
          species: confirmForm.elements.namedItem("species").value,
        };
        const result = await send("POST", api + "confirm/", body);
        button.disabled = false;
        if (!result.ok) {
          error.textContent = Object.values(errorsOf(result)).join(" ");
          return;
        }
        reload(result.data.start_time, result.data.uuid);
      });
    });

    // --- Toggles: annotation labels, detections and their labels shown or not, remembered in this browser. ----
    function toggle(input, key, className) {
      let on = true;
      try {
        on = window.localStorage.getItem(key) !== "0";
      } catch (error) {
        on = true;
      }
      input.checked = on;
      spectrogram.classList.toggle(className, !on);
      input.addEventListener("change", () => {
        spectrogram.classList.toggle(className, !input.checked);
        try {
          window.localStorage.setItem(key, input.checked ? "1" : "0");
        } catch (error) {
          // not remembered
        }
      });
    }
    toggle(viewer.querySelector(".show-annotation-labels"), LABELS_KEY, "hide-annotation-labels");
    toggle(viewer.querySelector(".show-detections"), DETECTIONS_KEY, "hide-detections");
    toggle(viewer.querySelector(".show-detection-labels"), DETECTION_LABELS_KEY, "hide-detection-labels");

    // Escape: stop a drag, else close the form, else leave Annotate mode.
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (gesture) {
        endGesture(null);
      } else if (!panel.hidden) {
        closePanel();
      } else if (annotating()) {
        setMode(false);
      } else {
        return;
      }
      event.preventDefault();
    });

    let remembered = "";
    try {
      remembered = window.sessionStorage.getItem(MODE_KEY) || "";
    } catch (error) {
      remembered = "";
    }
    if (remembered) setMode(true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
