// Rating page of a taskloss reader study.
//
// The personal token is the last part of the page's path (/r/<token>); every API call sends it as a
// Bearer token. Images arrive as raw float32 (values in [0, 1]) and are drawn on a canvas with the
// reader's window/level and zoom. A rating counts only when the server has acknowledged it.
"use strict";

(() => {
  const token = decodeURIComponent(location.pathname.split("/").pop() || "");
  const $ = (id) => document.getElementById(id);
  const canvas = $("image");
  const context = canvas.getContext("2d");
  const CACHE_SIZE = 6;
  const DEFAULT_VIEW = { window: 1, level: 0.5, zoom: 1, panX: 0, panY: 0 };

  const state = {
    items: [],
    scale: null,
    index: 0,
    view: { ...DEFAULT_VIEW },
    image: null, // { width, height, pixels: Float32Array }
    bitmap: document.createElement("canvas"),
    cache: new Map(), // image_id -> Promise of an image
    busy: false,
  };

  async function api(path, options = {}) {
    const response = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${token}`, ...(options.headers || {}) },
      cache: "no-store",
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        message = (await response.json()).error || message;
      } catch (_) {
        // not JSON: keep the status line
      }
      throw new Error(message);
    }
    return response;
  }

  function status(message, isError = false) {
    const box = $("status");
    box.textContent = message;
    box.classList.toggle("error", isError);
  }

  // ---- images -------------------------------------------------------------------------------

  function fetchImage(imageId) {
    if (!state.cache.has(imageId)) {
      const promise = api(`/api/images/${imageId}`).then(async (response) => ({
        width: Number(response.headers.get("X-Image-Width")),
        height: Number(response.headers.get("X-Image-Height")),
        pixels: new Float32Array(await response.arrayBuffer()),
      }));
      promise.catch(() => state.cache.delete(imageId));
      state.cache.set(imageId, promise);
      while (state.cache.size > CACHE_SIZE) state.cache.delete(state.cache.keys().next().value);
    }
    return state.cache.get(imageId);
  }

  // Map the float image through the window/level onto the offscreen 8-bit bitmap.
  function renderBitmap() {
    const { width, height, pixels } = state.image;
    const low = state.view.level - state.view.window / 2;
    const gain = 255 / state.view.window;
    state.bitmap.width = width;
    state.bitmap.height = height;
    const bitmapContext = state.bitmap.getContext("2d");
    const data = bitmapContext.createImageData(width, height);
    const rgba = data.data;
    for (let i = 0; i < pixels.length; i += 1) {
      const grey = Math.min(255, Math.max(0, (pixels[i] - low) * gain));
      rgba[4 * i] = grey;
      rgba[4 * i + 1] = grey;
      rgba[4 * i + 2] = grey;
      rgba[4 * i + 3] = 255;
    }
    bitmapContext.putImageData(data, 0, 0);
  }

  function fitScale() {
    return Math.min(canvas.width / state.image.width, canvas.height / state.image.height);
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(canvas.clientHeight * ratio);
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    if (!state.image) return;
    const scale = fitScale() * state.view.zoom;
    const x = (canvas.width - state.image.width * scale) / 2 + state.view.panX * ratio;
    const y = (canvas.height - state.image.height * scale) / 2 + state.view.panY * ratio;
    context.imageSmoothingEnabled = scale < 4; // show single pixels when zoomed far in
    context.drawImage(state.bitmap, x, y, state.image.width * scale, state.image.height * scale);
    showView();
  }

  function showView() {
    const { window: width, level, zoom } = state.view;
    $("window").value = width;
    $("level").value = level;
    $("window-value").textContent = width.toFixed(2);
    $("level-value").textContent = level.toFixed(3);
    $("zoom-value").textContent = `${Math.round(zoom * 100)} %`;
    $("view-info").textContent = `W ${width.toFixed(2)}  L ${level.toFixed(3)}  zoom ${Math.round(zoom * 100)} %`;
  }

  function setView(changes) {
    Object.assign(state.view, changes);
    state.view.window = Math.min(1, Math.max(0.02, state.view.window));
    state.view.level = Math.min(1, Math.max(0, state.view.level));
    state.view.zoom = Math.min(16, Math.max(0.25, state.view.zoom));
    if ("window" in changes || "level" in changes) renderBitmap();
    draw();
  }

  // Zoom by `factor` keeping the canvas point (cx, cy), in CSS pixels from the centre, fixed.
  function zoomAbout(factor, cx = 0, cy = 0) {
    const zoom = Math.min(16, Math.max(0.25, state.view.zoom * factor));
    const applied = zoom / state.view.zoom;
    setView({
      zoom,
      panX: cx - (cx - state.view.panX) * applied,
      panY: cy - (cy - state.view.panY) * applied,
    });
  }

  // ---- items and ratings ----------------------------------------------------------------------

  async function show(index) {
    state.index = Math.min(Math.max(index, 0), state.items.length - 1);
    const item = state.items[state.index];
    showItem();
    $("loading").hidden = false;
    try {
      const image = await fetchImage(item.image_id);
      if (state.items[state.index] !== item) return; // the reader moved on meanwhile
      state.image = image;
      renderBitmap();
      draw();
      canvas.dataset.imageId = item.image_id;
    } catch (error) {
      status(`Could not load the image: ${error.message}`, true);
    } finally {
      $("loading").hidden = true;
    }
    const next = state.items[state.index + 1];
    if (next) fetchImage(next.image_id).catch(() => {});
  }

  function showItem() {
    const total = state.items.length;
    const rated = state.items.filter((item) => item.score !== null).length;
    const item = state.items[state.index];
    $("position").textContent = `Image ${state.index + 1} of ${total}`;
    $("progress-text").textContent = `${rated} of ${total} rated`;
    $("progress").max = total;
    $("progress").value = rated;
    for (const button of $("scale").querySelectorAll("button")) {
      const chosen = Number(button.dataset.score) === item.score;
      button.setAttribute("aria-pressed", String(chosen));
    }
    $("current").textContent = item.score === null ? "Not rated yet." : `Your rating: ${item.score}`;
    $("prev").disabled = state.index === 0;
    $("next").disabled = state.index === total - 1;
    $("next-unrated").disabled = rated === total;
    if (rated === total) {
      status(`All ${total} images are rated. Thank you! You can still go back and change any rating.`);
    }
  }

  async function rate(score) {
    if (state.busy || !state.items.length) return;
    const item = state.items[state.index];
    state.busy = true;
    status(`Saving ${score}…`);
    try {
      await api(`/api/ratings/${item.image_id}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ score }),
      });
      item.score = score;
      status(`Saved: ${score}.`);
      if (state.index < state.items.length - 1) {
        await show(state.index + 1);
      } else {
        showItem();
      }
    } catch (error) {
      status(`Not saved: ${error.message}`, true);
    } finally {
      state.busy = false;
    }
  }

  function buildScale() {
    const { low, high, labels } = state.scale;
    const box = $("scale");
    box.style.setProperty("--points", String(high - low + 1));
    for (let score = low; score <= high; score += 1) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "score";
      button.dataset.score = String(score);
      button.title = `Rate ${score} (key ${score})`;
      const number = document.createElement("span");
      number.className = "number";
      number.textContent = String(score);
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = labels[score - low];
      button.append(number, label);
      button.addEventListener("click", () => rate(score));
      box.append(button);
    }
  }

  // ---- input ----------------------------------------------------------------------------------

  function bindInput() {
    $("prev").addEventListener("click", () => show(state.index - 1));
    $("next").addEventListener("click", () => show(state.index + 1));
    $("next-unrated").addEventListener("click", () => {
      const unrated = state.items.findIndex((item) => item.score === null);
      if (unrated >= 0) show(unrated);
    });
    $("window").addEventListener("input", (event) => setView({ window: Number(event.target.value) }));
    $("level").addEventListener("input", (event) => setView({ level: Number(event.target.value) }));
    $("zoom-in").addEventListener("click", () => zoomAbout(1.25));
    $("zoom-out").addEventListener("click", () => zoomAbout(0.8));
    $("reset").addEventListener("click", () => setView({ ...DEFAULT_VIEW }));
    canvas.addEventListener("dblclick", () => setView({ ...DEFAULT_VIEW }));

    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = canvas.getBoundingClientRect();
      const cx = event.clientX - box.left - box.width / 2;
      const cy = event.clientY - box.top - box.height / 2;
      zoomAbout(Math.exp(-event.deltaY * 0.0015), cx, cy);
    }, { passive: false });

    let drag = null;
    canvas.addEventListener("mousedown", (event) => {
      event.preventDefault();
      drag = { x: event.clientX, y: event.clientY, pan: event.shiftKey || event.button === 1, view: { ...state.view } };
    });
    window.addEventListener("mousemove", (event) => {
      if (!drag || !state.image) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (drag.pan) {
        setView({ panX: drag.view.panX + dx, panY: drag.view.panY + dy });
      } else {
        // Radiology convention: right widens the window, down raises the level.
        setView({ window: drag.view.window * Math.exp(dx / 200), level: drag.view.level + dy / 400 });
      }
    });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("resize", draw);

    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const { low, high } = state.scale;
      if (/^[0-9]$/.test(event.key) && Number(event.key) >= low && Number(event.key) <= high) {
        event.preventDefault();
        rate(Number(event.key));
      } else if (event.key === "ArrowLeft") {
        event.preventDefault();
        show(state.index - 1);
      } else if (event.key === "ArrowRight") {
        event.preventDefault();
        show(state.index + 1);
      } else if (event.key === "+" || event.key === "=") {
        zoomAbout(1.25);
      } else if (event.key === "-") {
        zoomAbout(0.8);
      } else if (event.key === "r" || event.key === "R") {
        setView({ ...DEFAULT_VIEW });
      }
    });
  }

  async function start() {
    try {
      const session = await (await api("/api/session")).json();
      state.items = session.items;
      state.scale = session.scale;
      $("reader").textContent = `Reader: ${session.reader}`;
      $("rubric").textContent = session.rubric;
      buildScale();
      bindInput();
      const firstUnrated = state.items.findIndex((item) => item.score === null);
      await show(firstUnrated >= 0 ? firstUnrated : 0);
      document.body.dataset.ready = "true";
    } catch (error) {
      status(`Could not start: ${error.message}`, true);
    }
  }

  start();
})();
