// The review page: one detection at a time, judged with keys or buttons. The sample came with the page;
// a verdict is posted in the background (in order, one after another) while the next item shows, and the
// next item's image and audio are fetched ahead. No framework.
"use strict";

(function () {
  const root = document.getElementById("review");
  if (!root) return;
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const items = data.items;
  const urls = data.urls;
  const LABELS = { correct: "correct", wrong: "wrong", unsure: "unsure", other: "another species" };
  const $ = (selector, within) => (within || document).querySelector(selector);

  const view = {
    number: $(".item-number", root),
    where: $(".item-where", root),
    score: $(".item-score strong", root),
    verdict: $(".item-verdict", root),
    image: $(".review-spectrogram img", root),
    mark: $(".window-mark", root),
    playhead: $(".playhead", root),
    maxKhz: $(".max-khz", root),
    viewFrom: $(".view-from", root),
    viewTo: $(".view-to", root),
    windowFrom: $(".window-from", root),
    windowTo: $(".window-to", root),
    audio: $(".review-audio", root),
    status: $(".review-status", root),
    other: $(".other-species", root),
    otherInput: $(".other-species input", root),
    labels: $("#species-labels"),
    progress: $(".progress-count"),
    progressBar: $(".review-progress"),
    panel: $(".calibration-panel"),
    similar: $(".similar-panel"),
  };

  let index = data.start;
  // What ← takes back, newest last: one verdict (and the one it replaced) or a bulk verdict on similar ones.
  const history = [];
  // The last verdict given here: what "similar detections" are looked for around.
  let last = null;
  // Held so that the next item's image and audio finish loading.
  let preloaded = null;

  // --- Talking to the server: posts go one after another, so an undo never overtakes its verdict. ----
  let queue = Promise.resolve();

  async function request(url, fields) {
    const options = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (fields) {
      const body = new URLSearchParams();
      for (const [name, value] of Object.entries(fields)) {
        (Array.isArray(value) ? value : [value]).forEach((one) => {
          if (one !== null && one !== undefined) body.append(name, one);
        });
      }
      Object.assign(options, { method: "POST", body });
      options.headers["X-CSRFToken"] = root.dataset.csrf;
    }
    const response = await fetch(url, options);
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail || "the server answered " + response.status);
    return answer;
  }

  function send(url, fields) {
    const sent = queue.then(() => request(url, fields));
    queue = sent.catch(() => {});
    sent.then(refreshPanel, () => {});
    return sent;
  }

  function say(text, kind) {
    view.status.textContent = text;
    view.status.className = "review-status " + (kind || "muted");
  }

  // --- Showing an item ---------------------------------------------------------------------------
  function verdictText(item) {
    if (!item.verdict) return "";
    return item.verdict === "other" ? "another species: " + commonName(item.other) : LABELS[item.verdict];
  }

  function commonName(label) {
    if (!label) return "";
    const [scientific, common] = label.split("_");
    return common ? common + " (" + scientific + ")" : scientific;
  }

  function show(at, { play = true } = {}) {
    index = Math.max(0, Math.min(at, items.length - 1));
    const item = items[index];
    view.number.textContent = index + 1;
    view.where.textContent = item.file + " · " + item.clock;
    view.where.href = item.recording;
    view.where.title = item.path;
    if (view.score) view.score.textContent = item.score.toFixed(3);
    view.verdict.hidden = !item.verdict;
    view.verdict.textContent = item.verdict ? "judged: " + verdictText(item) : "";
    view.verdict.className = "item-verdict verdict-" + (item.verdict || "none");
    view.image.src = item.image;
    view.mark.style.left = item.window_left + "%";
    view.mark.style.width = item.window_width + "%";
    view.maxKhz.textContent = item.max_khz.toFixed(0) + " kHz";
    view.viewFrom.textContent = item.view_from;
    view.viewTo.textContent = item.view_to;
    // The window's own times, under its edges.
    view.windowFrom.textContent = item.window_from;
    view.windowFrom.style.left = item.window_left + "%";
    view.windowTo.textContent = item.window_to;
    view.windowTo.style.left = item.window_left + item.window_width + "%";
    // At the recording's start or end there is no context on that side: one label is enough.
    view.viewFrom.hidden = item.view_from === item.window_from;
    view.viewTo.hidden = item.view_to === item.window_to;
    root.querySelectorAll(".verdict-buttons .verdict").forEach((button) => {
      button.classList.toggle("given", button.dataset.action === item.verdict);
    });
    closeOther();
    view.audio.src = item.audio;
    if (play) replay();
    preload(nextUnjudged(index + 1, false));
  }

  function preload(at) {
    if (at === null || at === index) return;
    const item = items[at];
    // The browser keeps both in its cache (the server says they may be kept): showing it costs nothing more.
    const image = new Image();
    image.src = item.image;
    const audio = new Audio();
    audio.preload = "auto";
    audio.src = item.audio;
    preloaded = { image, audio };
  }

  function replay() {
    view.audio.currentTime = 0;
    view.audio.play().catch((error) => {
      // Interrupted by the next item's audio is nothing; refused before a first key or click is worth saying.
      if (error.name === "NotAllowedError") say("Press space (or Replay) to play: the browser waits for a first key or click.");
    });
  }

  // The playhead runs over the window while its audio plays.
  function movePlayhead() {
    const item = items[index];
    const duration = view.audio.duration;
    if (!view.audio.paused && duration) {
      const left = item.window_left + (item.window_width * view.audio.currentTime) / duration;
      view.playhead.style.left = left + "%";
      view.playhead.hidden = false;
      window.requestAnimationFrame(movePlayhead);
    } else {
      view.playhead.hidden = true;
    }
  }
  view.audio.addEventListener("play", () => window.requestAnimationFrame(movePlayhead));

  function nextUnjudged(from, wrap = true) {
    for (let i = from; i < items.length; i++) if (!items[i].verdict) return i;
    if (wrap) for (let i = 0; i < from && i < items.length; i++) if (!items[i].verdict) return i;
    return null;
  }

  function updateProgress() {
    const judged = items.filter((item) => item.verdict).length;
    view.progress.textContent = judged + " / " + items.length;
    view.progressBar.value = judged;
    document.querySelectorAll(".bins tr[data-bin]").forEach((row) => {
      const bin = Number(row.dataset.bin);
      row.querySelector(".bin-left").textContent = items.filter((item) => item.bin === bin && !item.verdict).length;
    });
  }

  function advance() {
    updateProgress();
    const next = nextUnjudged(index + 1);
    if (next === null) {
      say("All " + items.length + " detections of the sample are judged: see the calibration, or draw a larger sample.", "done");
      show(index, { play: false });
    } else {
      show(next);
    }
  }

  // --- Verdicts ----------------------------------------------------------------------------------
  function judge(verdict, other) {
    const at = index;
    const item = items[at];
    const previous = item.verdict ? { verdict: item.verdict, other: item.other } : null;
    item.verdict = verdict;
    item.other = other || null;
    history.push({ kind: "one", index: at, clip: item.clip, previous });
    last = { clip: item.clip, verdict, other: item.other, text: verdictText(item), where: item.file + " " + item.clock };
    offerSimilar();
    say("Saved: " + verdictText(item) + " (" + item.file + " " + item.clock + ").");
    advance();
    send(urls.verdict, { clip: item.clip, species: data.species, verdict, other_species: item.other }).catch((error) => {
      item.verdict = previous ? previous.verdict : null;
      item.other = previous ? previous.other : null;
      const entry = history.findIndex((one) => one.kind === "one" && one.clip === item.clip && one.index === at);
      if (entry >= 0) history.splice(entry, 1);
      updateProgress();
      show(at, { play: false });
      say("Not saved: " + error.message, "error");
    });
  }

  function back() {
    const entry = history.pop();
    if (!entry) {
      if (index > 0) show(index - 1);
      return;
    }
    if (entry.kind === "bulk") {
      items.forEach((item) => {
        if (entry.clips.includes(item.clip)) item.verdict = item.other = null;
      });
      updateProgress();
      say("Took back the verdict on " + entry.clips.length + " similar detection" + (entry.clips.length === 1 ? "" : "s") + ".");
      send(urls.undo, { species: data.species, clip: entry.clips }).catch((error) => say("Not undone: " + error.message, "error"));
      return;
    }
    const item = items[entry.index];
    item.verdict = entry.previous ? entry.previous.verdict : null;
    item.other = entry.previous ? entry.previous.other : null;
    last = null;
    view.similar.hidden = true;
    updateProgress();
    show(entry.index);
    say(entry.previous ? "Undone: back to " + verdictText(item) + "." : "Undone: this detection is not judged.");
    const fields = { species: data.species, clip: entry.clip };
    if (entry.previous) Object.assign(fields, { restore_verdict: entry.previous.verdict, restore_other_species: entry.previous.other });
    send(urls.undo, fields).catch((error) => say("Not undone: " + error.message, "error"));
  }

  function skip() {
    const next = nextUnjudged(index + 1);
    show(next === null ? (index + 1) % items.length : next);
  }

  // --- Another species: type-ahead over the model's labels, loaded once -------------------------------
  let labels = null; // shown text -> label
  async function loadLabels() {
    if (labels) return;
    labels = new Map();
    try {
      const answer = await request(urls.labels);
      const options = document.createDocumentFragment();
      for (const label of answer.labels) {
        const text = commonName(label);
        labels.set(text, label);
        labels.set(label, label);
        const option = document.createElement("option");
        option.value = text;
        options.appendChild(option);
      }
      view.labels.replaceChildren(options);
    } catch (error) {
      labels = null;
      say("The model's labels could not be loaded: " + error.message, "error");
    }
  }

  function openOther() {
    view.other.hidden = false;
    view.otherInput.value = "";
    view.otherInput.focus();
    loadLabels();
  }

  function closeOther() {
    // The keys must reach the page again, not a hidden input.
    if (view.other.contains(document.activeElement)) document.activeElement.blur();
    view.other.hidden = true;
  }

  view.other.addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = view.otherInput.value.trim();
    const label = labels && (labels.get(typed) || [...labels.values()].find((one) => one.split("_")[0] === typed));
    if (!label) {
      say("Pick one of the model's labels from the list (type part of a common or scientific name).", "error");
      view.otherInput.focus();
      return;
    }
    if (label === data.species) {
      say("That is the species judged: press y for correct.", "error");
      return;
    }
    closeOther();
    judge("other", label);
  });
  view.otherInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeOther();
    }
  });

  // --- Similar detections: the last verdict, applied to those checked, with one confirmation --------------
  function offerSimilar() {
    view.similar.hidden = false;
    $(".similar-about", view.similar).textContent = "You marked " + last.where + " " + last.text + ".";
    $(".similar-list", view.similar).replaceChildren();
    $(".similar-actions", view.similar).hidden = true;
  }

  async function showSimilar() {
    if (!last) return;
    const about = last;
    const list = $(".similar-list", view.similar);
    list.textContent = "Looking for similar detections…";
    let answer;
    try {
      answer = await request(urls.similar + "?" + new URLSearchParams({ clip: about.clip, species: data.species }));
    } catch (error) {
      list.textContent = "No similar detections: " + error.message;
      return;
    }
    if (about !== last) return;
    if (!answer.similar.length) {
      list.textContent = "None left: every detection of this species near it is judged, or the job kept no embeddings.";
      return;
    }
    list.replaceChildren(...answer.similar.map(similarCard));
    $(".similar-actions", view.similar).hidden = false;
    updateApply();
  }

  function similarCard(row) {
    const card = document.createElement("label");
    card.className = "similar-card";
    card.dataset.clip = row.clip;
    const score = data.blind ? "" : " · score " + row.score.toFixed(3);
    card.innerHTML =
      '<img width="240" height="128" alt="Spectrogram of the similar detection">' +
      '<span class="similar-line"><input type="checkbox" name="similar"> <button type="button" class="play">▶</button> ' +
      '<span class="small">similarity <span class="similarity" title="cosine similarity of the embeddings"></span></span></span>' +
      '<span class="muted small similar-where"></span>';
    $("img", card).src = row.image;
    $(".similarity", card).textContent = row.similarity.toFixed(3);
    $(".similar-where", card).textContent = row.file + " " + row.clock + score;
    $("button.play", card).addEventListener("click", (event) => {
      event.preventDefault();
      const player = $(".similar-audio", view.similar);
      player.src = row.audio;
      player.play().catch(() => {});
    });
    $("input", card).addEventListener("change", updateApply);
    return card;
  }

  function checkedClips() {
    return [...view.similar.querySelectorAll(".similar-card")].filter((card) => $("input", card).checked).map((card) => card.dataset.clip);
  }

  function updateApply() {
    const button = $('[data-action="apply-similar"]', view.similar);
    const count = checkedClips().length;
    button.disabled = !count || !last;
    button.textContent = last ? "Mark the " + count + " checked " + last.text : "Apply the same verdict to the checked";
  }

  async function applySimilar() {
    const clips = checkedClips();
    if (!clips.length || !last) return;
    const about = last;
    const question = "Mark " + clips.length + " similar detection" + (clips.length === 1 ? "" : "s") + " " + about.text + ", like " + about.where + "?";
    if (!window.confirm(question)) return;
    let answer;
    try {
      answer = await send(urls.bulk, {
        species: data.species,
        like_clip: about.clip,
        clip: clips,
        verdict: about.verdict,
        other_species: about.other,
      });
    } catch (error) {
      say("Not saved: " + error.message, "error");
      return;
    }
    const given = new Set(answer.given);
    items.forEach((item) => {
      if (given.has(item.clip)) Object.assign(item, { verdict: about.verdict, other: about.other });
    });
    history.push({ kind: "bulk", clips: answer.given });
    view.similar.querySelectorAll(".similar-card").forEach((card) => {
      if (given.has(card.dataset.clip)) card.remove();
    });
    updateApply();
    updateProgress();
    if (items[index].verdict) advance();
    say("Marked " + answer.count + " similar detection" + (answer.count === 1 ? "" : "s") + " " + about.text + " (← takes it back).");
  }

  // --- The calibration panel follows the verdicts ---------------------------------------------------
  let refreshing = null;
  function refreshPanel() {
    window.clearTimeout(refreshing);
    refreshing = window.setTimeout(async () => {
      let summary;
      try {
        summary = await request(urls.summary + "?" + new URLSearchParams({ species: data.species }));
      } catch (error) {
        return;
      }
      for (const [kind, count] of Object.entries(summary.counts)) {
        const node = $(".count-" + kind, view.panel);
        if (node) node.textContent = count;
      }
      $(".needed", view.panel).hidden = !summary.needed;
      $(".needed-text", view.panel).textContent = summary.needed;
      $(".fit-problem", view.panel).hidden = !summary.problem;
      $(".fit-problem", view.panel).textContent = summary.problem;
      const list = $(".thresholds", view.panel);
      list.hidden = !summary.threshold_texts;
      if (summary.threshold_texts) {
        list.replaceChildren(
          ...Object.entries(summary.threshold_texts).map(([target, text]) => {
            const line = document.createElement("li");
            line.dataset.target = target;
            line.append("P ≥ " + target + " at score ");
            const value = document.createElement("strong");
            value.textContent = text;
            line.append(value);
            return line;
          })
        );
      }
    }, 250);
  }

  // --- Keys and buttons ----------------------------------------------------------------------------
  const actions = {
    correct: () => judge("correct"),
    wrong: () => judge("wrong"),
    unsure: () => judge("unsure"),
    other: openOther,
    "cancel-other": closeOther,
    back,
    replay,
    skip,
    similar: showSimilar,
    "check-all": () => {
      view.similar.querySelectorAll(".similar-card input").forEach((box) => { box.checked = true; });
      updateApply();
    },
    "apply-similar": applySimilar,
  };
  const KEYS = { y: "correct", n: "wrong", u: "unsure", o: "other", ArrowLeft: "back", " ": "replay", ArrowRight: "skip", s: "similar" };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, select, textarea")) return;
    const action = KEYS[event.key];
    if (!action) return;
    event.preventDefault();
    if (event.repeat && action !== "back") return;
    actions[action]();
  });
  // Space on a focused button would click it as well: the key alone replays.
  document.addEventListener("keyup", (event) => {
    if (event.key === " " && !event.target.closest("input, select, textarea")) event.preventDefault();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !actions[button.dataset.action]) return;
    event.preventDefault();
    button.blur();
    actions[button.dataset.action]();
  });

  updateProgress();
  show(index);
  if (items.every((item) => item.verdict)) {
    say("All " + items.length + " detections of the sample are judged (by you): see the calibration, or draw a larger sample.", "done");
  }
})();
