// The search page: typed or spoken queries, results with players.
// Plain JavaScript, no dependencies (the page must work offline).
"use strict";

const $ = (id) => document.getElementById(id);
let maxUploadBytes = null;
let recorder = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// FastAPI's errors are {"detail": text} (or a list for validation).
async function errorText(response) {
  try {
    const body = await response.json();
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => d.msg).join("; ");
    }
    return body.detail || response.statusText;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

function setBusy(busy) {
  for (const id of ["search", "upload"]) {
    $(id).disabled = busy;
  }
  document.body.setAttribute("aria-busy", busy ? "true" : "false");
}

function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds - 60 * m).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

function render(results, what) {
  const list = $("results");
  list.replaceChildren();
  for (const hit of results) {
    const item = document.createElement("li");
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = hit.rank;
    rank.setAttribute("aria-label", `rank ${hit.rank}`);
    const file = document.createElement("span");
    file.className = "file";
    file.textContent = hit.path;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent =
      `${clock(hit.start)}–${clock(hit.end)} · score ${hit.score.toFixed(3)}`;
    const player = document.createElement("audio");
    player.controls = true;
    player.preload = "none";
    // A media fragment: the player starts at the passage (and pauses at
    // its end); the whole recording stays seekable.
    player.src = `${hit.audio_url}#t=${hit.start},${hit.end}`;
    player.setAttribute(
      "aria-label",
      `${hit.path}, from ${clock(hit.start)} to ${clock(hit.end)}`,
    );
    item.append(rank, file, meta, player);
    list.append(item);
  }
  const n = results.length;
  $("summary").textContent = n
    ? `${n} passage${n === 1 ? "" : "s"} for ${what}`
    : `Nothing found for ${what}.`;
}

async function run(request, what) {
  showError("");
  setBusy(true);
  $("summary").textContent = `Searching for ${what}…`;
  try {
    const response = await request();
    if (!response.ok) {
      showError(await errorText(response));
      $("summary").textContent = "";
      return;
    }
    const body = await response.json();
    render(body.results, what);
  } catch (error) {
    showError(`The server did not answer: ${error.message}`);
    $("summary").textContent = "";
  } finally {
    setBusy(false);
  }
}

function searchText(event) {
  event.preventDefault();
  const q = $("query").value.trim();
  if (!q) {
    showError("Type what to search for.");
    return;
  }
  const params = new URLSearchParams({ q, k: $("k").value || "10" });
  run(() => fetch(`/api/search?${params}`), `“${q}”`);
}

function searchAudio(blob, name, what) {
  if (maxUploadBytes && blob.size > maxUploadBytes) {
    showError(
      `That audio is ${(blob.size / 1e6).toFixed(1)} MB; the server ` +
        `accepts up to ${(maxUploadBytes / 1e6).toFixed(1)} MB.`,
    );
    return;
  }
  const form = new FormData();
  form.append("file", blob, name);
  form.append("k", $("k").value || "10");
  run(() => fetch("/api/search/audio", { method: "POST", body: form }), what);
}

function uploadChosen() {
  const file = $("upload").files[0];
  if (file) {
    searchAudio(file, file.name, file.name);
  }
  $("upload").value = "";
}

function recordingMode(on) {
  $("record").setAttribute("aria-pressed", on ? "true" : "false");
  $("record-label").textContent = on
    ? "Stop and search"
    : "Record a question";
}

async function toggleRecording() {
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  showError("");
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError(
      "This browser cannot record here (recording needs localhost or " +
        "https); send an audio file instead.",
    );
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(`No microphone: ${error.message}`);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
  recorder.addEventListener("stop", () => {
    for (const track of stream.getTracks()) {
      track.stop();
    }
    recordingMode(false);
    const type = recorder.mimeType || "audio/webm";
    const ending = type.includes("ogg") ? "ogg" : "webm";
    const blob = new Blob(chunks, { type });
    searchAudio(blob, `recording.${ending}`, "your recording");
  });
  recorder.start();
  recordingMode(true);
  $("summary").textContent = "Recording… press again to search.";
}

async function loadStatus() {
  try {
    const response = await fetch("/api/status");
    if (!response.ok) {
      throw new Error(await errorText(response));
    }
    const s = await response.json();
    maxUploadBytes = s.max_upload_bytes;
    const files = Object.values(s.files).reduce((a, b) => a + b, 0);
    const audio =
      s.audio_seconds < 3600
        ? `${(s.audio_seconds / 60).toFixed(1)} min`
        : `${(s.audio_seconds / 3600).toFixed(1)} h`;
    $("status").textContent =
      `${s.folder}: ${files} files, ${s.passages} passages, ` +
      `${audio} of audio · model ${s.model}`;
  } catch (error) {
    $("status").textContent = "";
    showError(`Cannot read the index status: ${error.message}`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("text-form").addEventListener("submit", searchText);
  $("upload").addEventListener("change", uploadChosen);
  $("record").addEventListener("click", toggleRecording);
  loadStatus();
});
