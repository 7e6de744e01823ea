// Echoroo ML pages: live job progress (polled every 2 s) and one audio player per page. No framework.
"use strict";

(function () {
  const POLL_MS = 2000;
  const FINISHED = new Set(["completed", "failed", "cancelled"]);

  // --- Progress: every element with data-job is kept up to date until its job finishes. -------
  function jobElements() {
    return Array.from(document.querySelectorAll("[data-job]"));
  }

  function update(element, job) {
    const set = (selector, text) => element.querySelectorAll(selector).forEach((node) => { node.textContent = text; });
    const status = element.querySelector(".job-status");
    if (status) {
      // "completed with 1 failed recording", in a warning tone, where the JSON words the state.
      status.textContent = job.status_text || job.status;
      status.className = "job-status status-" + (job.status_tone || job.status);
    }
    element.querySelectorAll("progress").forEach((bar) => { bar.value = job.progress; });
    set(".job-percent", job.percent + " %");
    set(".job-clips", job.processed_clips + " / " + job.total_clips);
    set(".job-duration", job.duration);
    set(".job-activity", job.activity ? "· " + job.activity + "…" : "");
    const wasFinished = FINISHED.has(element.dataset.status);
    element.dataset.status = job.status;
    // A job's own page reloads once its job finishes, to show what it found.
    if (job.finished && !wasFinished && element.hasAttribute("data-reload-when-finished")) {
      window.location.reload();
    }
  }

  async function poll() {
    const running = jobElements().filter((element) => !FINISHED.has(element.dataset.status));
    if (!running.length) return;
    const query = new URLSearchParams();
    new Set(running.map((element) => element.dataset.job)).forEach((uuid) => query.append("job", uuid));
    try {
      const response = await fetch(document.body.dataset.progressUrl + "?" + query, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) {
        const { jobs } = await response.json();
        for (const job of jobs) {
          running.filter((element) => element.dataset.job === job.uuid).forEach((element) => update(element, job));
        }
      }
    } catch (error) {
      // The server restarting, or the network: try again at the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }

  // --- Audio: anything with data-audio plays its clip in the page's player. -----------------------
  // A page's "with context" box (input.play-context, its value in seconds) plays that much more before and after
  // each clip; whether it is ticked is remembered in this browser.
  const CONTEXT_KEY = "echoroo.play-context";

  function contextBox() {
    return document.querySelector("input.play-context");
  }

  function audioUrl(trigger) {
    const url = trigger.dataset.audio;
    const box = contextBox();
    if (!box || !box.checked) return url;
    return url + (url.includes("?") ? "&" : "?") + "context=" + encodeURIComponent(box.value);
  }

  function play(trigger) {
    const player = document.querySelector("audio.player");
    if (!player) return;
    const url = audioUrl(trigger);
    const clip = trigger.closest("[data-clip]");
    document.querySelectorAll(".playing").forEach((node) => node.classList.remove("playing"));
    if (clip) {
      document.querySelectorAll('[data-clip="' + clip.dataset.clip + '"]').forEach((node) => node.classList.add("playing"));
    }
    if (player.getAttribute("src") !== url) {
      player.setAttribute("src", url);
    } else {
      player.currentTime = 0;
    }
    player.play().catch(() => {});
    const label = document.querySelector(".now-playing");
    const box = contextBox();
    const extra = box && box.checked ? " (with " + box.value + " s before and after)" : "";
    if (label) label.textContent = "Playing " + (trigger.getAttribute("title") || trigger.textContent.trim()) + extra;
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest("a, input, select, label, form")) return;
    const trigger = event.target.closest("[data-audio]");
    if (trigger) {
      event.preventDefault();
      play(trigger);
    }
  });

  // A form with data-confirm (cancelling a job) asks its question first, and is not sent unless confirmed.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset ? event.target.dataset.confirm : "";
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => {
    const box = contextBox();
    if (box) {
      try {
        box.checked = window.localStorage.getItem(CONTEXT_KEY) === "1";
      } catch (error) {
        // Storage refused: unticked.
      }
      box.addEventListener("change", () => {
        try {
          window.localStorage.setItem(CONTEXT_KEY, box.checked ? "1" : "0");
        } catch (error) {
          // not remembered
        }
      });
    }
    if (jobElements().some((element) => !FINISHED.has(element.dataset.status))) {
      window.setTimeout(poll, POLL_MS);
    }
  });
})();
