// hdsgd teach: the page. Hand-written, no libraries, nothing loaded from the network.
// Every number comes from the server (/api/*), which calls hdsgd.predict and hdsgd.simulate.
"use strict";

(function () {
  const POSITIONS = 1000;            // slider positions
  const COLORS = { theory: "#1f5fbf", mc: "#e07b00", bad: "#c62828", good: "#2e7d32",
                   ink: "#1b1f24", muted: "#5a6370", grid: "#e6eaf0", mark: "#6a1b9a" };
  const DIM_COLORS = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e"];
  const THEORY_COLORS = ["#1f5fbf", "#c2185b", "#00897b", "#6d4c41"];   // one per observable drawn
  const MC_COLORS = ["#e07b00", "#8e24aa", "#43a047", "#795548"];

  // ------------------------------------------------------------------ state
  const S = {
    catalog: null, view: null, values: {}, horizon: null, observable: null,
    xLog: true, yLog: true, theory: null, details: null, mc: null, job: null,
    inFlight: false, pending: false, firstInput: null, detailsSeq: 0,
    dims: [], redraws: 0,
  };
  // read by the browser test and the screenshot script
  const stats = { redraws: [], lastRedrawMs: null, lastServerMs: null, draws: 0,
                  theoryRequests: 0, errors: [], legend: [] };
  window.hdsgdTeach = { state: S, stats: stats };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ numbers
  function sig(x, n) {
    if (x === 0 || !isFinite(x)) return x;
    const p = Math.pow(10, n - 1 - Math.floor(Math.log10(Math.abs(x))));
    return Math.round(x * p) / p;
  }
  function fmt(x, n) {
    if (x === null || x === undefined) return "—";
    if (!isFinite(x)) return x > 0 ? "∞" : "−∞";
    if (x === 0) return "0";
    const a = Math.abs(x);
    if (a >= 1e5 || a < 1e-3) {
      const e = Math.floor(Math.log10(a));
      return `${sig(x / Math.pow(10, e), n || 3)}×10${sup(e)}`;
    }
    return String(sig(x, n || 3));
  }
  function sup(e) {
    const map = { "-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵",
                  "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹" };
    return String(e).split("").map((c) => map[c]).join("");
  }
  function tickLabel(v, log) {
    if (log) {
      const e = Math.round(Math.log10(v));
      if (Math.abs(v - Math.pow(10, e)) < 1e-9 * v) {
        if (e >= -2 && e <= 3) return String(Math.pow(10, e) < 1 ? Number(Math.pow(10, e).toFixed(-e)) : Math.pow(10, e));
        return "10" + sup(e);
      }
    }
    return fmt(v, 3);
  }

  // slider position <-> value
  function toValue(sl, pos) {
    const f = pos / POSITIONS;
    let v = sl.scale === "log" ? sl.low * Math.pow(sl.high / sl.low, f) : sl.low + f * (sl.high - sl.low);
    if (sl.integer) return Math.round(v);
    if (sl.scale === "log") return sig(v, 3);
    const step = (sl.high - sl.low) / POSITIONS;
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    return Number(v.toFixed(digits));
  }
  function toPos(sl, v) {
    let f = sl.scale === "log" ? Math.log(v / sl.low) / Math.log(sl.high / sl.low) : (v - sl.low) / (sl.high - sl.low);
    if (!isFinite(f)) f = v > sl.low ? 1 : 0;
    return Math.round(Math.min(1, Math.max(0, f)) * POSITIONS);
  }

  // ------------------------------------------------------------------ server
  async function api(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const resp = await fetch(path, opts);
    const data = await resp.json();
    if (!resp.ok) {
      const err = new Error(data.error || resp.statusText);
      err.field = data.field;
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function request(extra) {
    return Object.assign({ view: S.view.id, values: Object.assign({}, S.values), horizon: S.horizon,
                           observable: S.observable }, extra || {});
  }

  // ------------------------------------------------------------------ navigation
  function buildNav() {
    const nav = $("nav");
    nav.textContent = "";
    const groups = [["system", "Systems"], ["dimension", "Dimension d → ∞"], ["lesson", "Lessons"]];
    const all = S.catalog.views.map((v) => ({ id: v.id, menu: v.menu, kind: v.kind, ok: true }))
      .concat(S.catalog.unavailable.map((v) => ({ id: v.id, menu: v.menu || v.title, kind: v.kind, ok: false, reason: v.reason })));
    const order = {};
    S.catalog.views.concat(S.catalog.unavailable).forEach((v, i) => { order[v.id] = i; });
    for (const [kind, name] of groups) {
      const items = all.filter((v) => v.kind === kind);
      if (!items.length) continue;
      const g = document.createElement("div");
      g.className = "group";
      const label = document.createElement("span");
      label.className = "group-name";
      label.textContent = name;
      g.appendChild(label);
      items.sort((a, b) => order[a.id] - order[b.id]);
      for (const it of items) {
        const a = document.createElement("a");
        a.textContent = it.menu;
        a.dataset.view = it.id;
        if (it.ok) {
          a.href = "#" + it.id;
        } else {
          a.className = "unavailable";
          a.title = it.reason;
          a.setAttribute("aria-disabled", "true");
        }
        g.appendChild(a);
      }
      nav.appendChild(g);
    }
    const missing = S.catalog.unavailable;
    $("footer").textContent = "Every curve is hdsgd.predict / hdsgd.simulate on the Setup the sliders describe (\"Copy as Python\" gives the code)." +
      (missing.length ? ` Not available in this installation: ${missing.map((v) => v.title).join("; ")}.` : "");
  }

  function route() {
    const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    const [id, query] = hash.split("?");
    const view = S.catalog.views.find((v) => v.id === id) || S.catalog.views[0];
    const given = {};
    if (query && view.id === id) {
      for (const part of query.split("&")) {
        const [k, v] = part.split("=");
        if (k && v !== undefined && v !== "" && !isNaN(Number(v))) given[k] = Number(v);
      }
    }
    showView(view, given);
  }

  function saveHash() {
    const q = S.view.sliders.map((sl) => `${sl.name}=${S.values[sl.name]}`).join("&");
    S.lastHash = `#${S.view.id}?${q}`;
    history.replaceState(null, "", S.lastHash);
  }

  // ------------------------------------------------------------------ building a view
  function showView(view, given) {
    if (S.job && S.job.state === "running") cancelJob();
    S.view = view;
    S.values = {};
    for (const sl of view.sliders) S.values[sl.name] = sl.name in given ? given[sl.name] : sl.default;
    S.horizon = view.horizons[0];
    S.observable = view.observables[0];
    S.xLog = view.x_scale === "log";
    S.yLog = view.y_scale === "log";
    S.theory = null; S.details = null; S.mc = null; S.job = null;
    S.dims = view.dims.slice();
    S.firstOfView = true;
    document.body.className = view.kind;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view.id);
    $("title").textContent = view.title;
    const text = $("text");
    text.textContent = "";
    for (const t of view.text) {
      const p = document.createElement("p");
      p.textContent = t;
      text.appendChild(p);
    }
    buildSliders();
    buildFixed();
    buildOptions();
    buildSimulate();
    $("code").hidden = true;
    $("show-code").textContent = "Show code";
    $("readouts").textContent = "";
    $("diagram-box").hidden = !view.diagram;
    $("job-message").textContent = "";
    $("job-message").className = "message";
    $("progress").hidden = true;
    requestTheory(performance.now());
    window.scrollTo(0, 0);
  }

  function buildSliders() {
    const box = $("sliders");
    box.textContent = "";
    for (const sl of S.view.sliders) {
      const div = document.createElement("div");
      div.className = "slider";
      div.dataset.name = sl.name;
      const head = document.createElement("div");
      head.className = "head";
      const label = document.createElement("label");
      label.htmlFor = `range-${sl.name}`;
      label.innerHTML = `<span class="symbol"></span><span class="name"></span>`;
      label.querySelector(".symbol").textContent = sl.symbol;
      label.querySelector(".name").textContent = sl.name;
      const input = document.createElement("input");
      input.type = "text";
      input.inputMode = "decimal";
      input.id = `value-${sl.name}`;
      input.setAttribute("aria-label", `${sl.name} value`);
      input.value = String(S.values[sl.name]);
      head.append(label, input);
      const track = document.createElement("div");
      track.className = "track";
      const zone = document.createElement("div");
      zone.className = "zone unstable";
      zone.hidden = true;
      const range = document.createElement("input");
      range.type = "range";
      range.id = `range-${sl.name}`;
      range.min = 0; range.max = POSITIONS; range.step = 1;
      range.value = toPos(sl, S.values[sl.name]);
      const edge = document.createElement("div");
      edge.className = "edge";
      edge.hidden = true;
      track.append(zone, range, edge);
      const edgeLabel = document.createElement("div");
      edgeLabel.className = "edge-label";
      const help = document.createElement("div");
      help.className = "help";
      help.textContent = sl.help;
      const error = document.createElement("div");
      error.className = "error";
      error.setAttribute("role", "alert");
      div.append(head, track, edgeLabel, help, error);
      box.appendChild(div);
      range.addEventListener("input", () => {
        const at = performance.now();
        setValue(sl.name, toValue(sl, Number(range.value)), false);
        requestTheory(at);
      });
      input.addEventListener("change", () => {
        const v = Number(input.value.replace("×10", "e").trim());
        if (input.value.trim() === "" || isNaN(v)) {
          showFieldError(sl.name, `${sl.name}=${JSON.stringify(input.value)} is not a number`);
          return;
        }
        const at = performance.now();
        setValue(sl.name, v, true);
        requestTheory(at);
      });
    }
  }

  function setValue(name, v, moveRange) {
    const sl = S.view.sliders.find((s) => s.name === name);
    S.values[name] = v;
    const div = document.querySelector(`.slider[data-name="${name}"]`);
    div.querySelector("input[type=text]").value = String(v);
    if (moveRange) div.querySelector("input[type=range]").value = toPos(sl, v);
  }

  function showFieldError(name, message) {
    for (const div of document.querySelectorAll(".slider")) {
      const mine = div.dataset.name === name;
      div.querySelector(".error").textContent = mine ? message : "";
      div.querySelector("input[type=text]").classList.toggle("invalid", mine);
    }
  }

  function buildFixed() {
    const dl = $("fixed");
    dl.textContent = "";
    const entries = Object.entries(S.view.fixed);
    $("fixed-box").hidden = !entries.length;
    for (const [k, v] of entries) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = typeof v === "string" ? v : JSON.stringify(v);
      if (S.view.fixed_help[k]) dd.title = S.view.fixed_help[k];
      dl.append(dt, dd);
    }
  }

  function fillSelect(sel, options, value, label) {
    sel.textContent = "";
    for (const o of options) {
      const opt = document.createElement("option");
      opt.value = String(o);
      opt.textContent = label ? label(o) : String(o);
      sel.appendChild(opt);
    }
    sel.value = String(value);
  }

  function buildOptions() {
    const unit = S.view.time_unit === "t" ? "t" : "steps";
    fillSelect($("observable"), S.view.observables, S.observable, (o) => o.split("+").join(" & "));
    fillSelect($("horizon"), S.view.horizons, S.horizon, (h) => `${h} ${unit}`);
    updateToggles();
  }

  function updateToggles() {
    $("x-log").classList.toggle("on", S.xLog);
    $("x-linear").classList.toggle("on", !S.xLog);
    $("y-log").classList.toggle("on", S.yLog);
    $("y-linear").classList.toggle("on", !S.yLog);
  }

  function buildSimulate() {
    const v = S.view;
    const choice = $("dim-choice");
    choice.textContent = "";
    if (v.kind === "dimension") {
      choice.append("d:");
      for (const d of v.dims) {
        const l = document.createElement("label");
        const c = document.createElement("input");
        c.type = "checkbox";
        c.checked = true;
        c.value = d;
        c.addEventListener("change", () => {
          S.dims = Array.from(choice.querySelectorAll("input:checked")).map((x) => Number(x.value));
          if (!S.dims.length) { c.checked = true; S.dims = [d]; }
          requestTheory(performance.now());
        });
        l.append(c, ` ${d}`);
        choice.appendChild(l);
      }
    } else if (v.mc_dims.length) {
      const l = document.createElement("label");
      l.append("d ");
      const sel = document.createElement("select");
      sel.id = "mc-dim";
      const dims = Array.from(new Set(v.mc_dims.concat(v.theory_dim === null ? [] : [v.theory_dim]))).sort((a, b) => a - b);
      fillSelect(sel, dims, v.theory_dim, (d) => d === v.theory_dim ? `${d} (theory's)` : String(d));
      l.appendChild(sel);
      choice.appendChild(l);
    }
    const seeds = [2, 4, 8, 16, 32, 64, 128, 256];
    if (!seeds.includes(v.seeds)) seeds.push(v.seeds);
    fillSelect($("seeds"), seeds.sort((a, b) => a - b), v.seeds);
    $("method-label").hidden = !v.simulate_methods.length;
    fillSelect($("method"), v.simulate_methods, v.simulate_methods[0] || "");
    setJobButton(false);
  }

  // ------------------------------------------------------------------ theory requests
  function requestTheory(inputAt) {
    if (S.firstInput === null) S.firstInput = inputAt;
    if (S.inFlight) { S.pending = true; return; }
    sendTheory();
  }

  async function sendTheory() {
    S.inFlight = true;
    S.pending = false;
    const covered = S.firstInput;
    S.firstInput = null;
    const view = S.view;
    const body = request(view.kind === "dimension" ? { dims: S.dims } : {});
    stats.theoryRequests += 1;
    try {
      const data = await api("/api/predict", body);
      if (S.view !== view) return;
      showFieldError(null, "");
      S.theory = data;
      drawAll();
      const ms = performance.now() - covered;
      stats.lastRedrawMs = ms;
      stats.lastServerMs = data.elapsed_ms;
      stats.redraws.push({ ms: ms, server_ms: data.elapsed_ms });
      setStatus(ms, data);
      $("code").textContent = data.python;
      saveHash();
      scheduleDetails();
    } catch (err) {
      stats.errors.push(err.message);
      if (S.view === view) {
        if (err.field) showFieldError(err.field, err.message);
        setStatusText(err.message, true);
      }
    } finally {
      S.inFlight = false;
      if (S.pending) sendTheory();
    }
  }

  function setStatus(ms, data) {
    const box = $("status");
    box.textContent = "";
    const methods = Array.from(new Set(data.curves.map((c) => c.method))).join(", ");
    const first = stats.redraws.length === 1 || S.firstOfView;
    S.firstOfView = false;
    box.append(`Theory (${methods}) redrawn ${Math.round(ms)} ms after the move (server ${Math.round(data.elapsed_ms)} ms)` +
               (first ? "; a view's first curve may include compiling it." : "."));
    const warn = data.curves.map((c) => c.warning).filter(Boolean)[0];
    if (warn) {
      const w = document.createElement("div");
      w.className = "warning";
      w.textContent = "⚠ " + warn;
      box.appendChild(w);
    }
  }

  function setStatusText(text, bad) {
    const box = $("status");
    box.textContent = "";
    const span = document.createElement("span");
    span.textContent = text;
    if (bad) span.className = "warning";
    box.appendChild(span);
  }

  let detailsTimer = null;
  function scheduleDetails() {
    clearTimeout(detailsTimer);
    detailsTimer = setTimeout(sendDetails, 60);
  }

  async function sendDetails() {
    if (S.view.kind === "dimension") { S.details = null; showReadouts(); return; }
    const seq = ++S.detailsSeq;
    const view = S.view;
    try {
      const data = await api("/api/details", request());
      if (seq !== S.detailsSeq || S.view !== view) return;
      S.details = data;
      showEdge();
      showReadouts();
      drawAll();
    } catch (err) {
      stats.errors.push(err.message);
    }
  }

  function showEdge() {
    const edge = S.details && S.details.edge;
    for (const div of document.querySelectorAll(".slider")) {
      const sl = S.view.sliders.find((s) => s.name === div.dataset.name);
      const mark = div.querySelector(".edge");
      const zone = div.querySelector(".zone");
      const label = div.querySelector(".edge-label");
      const mine = edge && edge.field === sl.name;
      if (!mine) { mark.hidden = true; zone.hidden = true; label.textContent = ""; continue; }
      if (edge.value === null) {
        mark.hidden = true; zone.hidden = true;
        label.textContent = edge.error ? `${edge.label}: ${edge.error}` : `${edge.label}: none (stable at every value)`;
        continue;
      }
      const f = toPos(sl, edge.value) / POSITIONS;
      const inside = edge.value > sl.low && edge.value < sl.high;
      mark.hidden = !inside;
      zone.hidden = !(edge.value < sl.high);
      mark.style.left = `calc(${(100 * f).toFixed(2)}% + ${(8 - 16 * f).toFixed(1)}px)`;
      zone.style.left = `calc(${(100 * f).toFixed(2)}% + ${(8 - 16 * f).toFixed(1)}px)`;
      zone.style.right = "8px";
      const past = S.values[sl.name] >= edge.value;
      label.textContent = `${edge.label} = ${fmt(edge.value, 4)}` + (past ? " — past it: diverges" : "");
    }
  }

  function showReadouts() {
    const box = $("readouts");
    box.textContent = "";
    let rows = [], head = null, title = "From the theory";
    if (S.details) {
      for (const r of S.details.readouts) {
        const value = r.value !== null ? fmt(r.value, 4) : (r.text || (r.error ? "n/a" : "—"));
        rows.push({ cells: [r.label, value], title: r.error, bad: r.text === "∞" });
      }
    }
    if (S.view.kind === "dimension" && S.mc && S.mc.view === S.view && S.mc.runs) {
      title = "How far the runs scatter at the end";
      head = ["d", "spread (s.d. / mean)", "√d × spread"];
      for (const run of S.mc.runs) {
        const spread = finalSpread(run);
        if (spread === null) continue;
        const scaled = Math.sqrt(run.dim) * spread.value;
        const error = scaled / Math.sqrt(2 * (spread.runs - 1));
        rows.push({ cells: [String(run.dim), `±${fmt(100 * spread.value, 2)} %`,
                            `${fmt(scaled, 2)} ± ${fmt(error, 1)}`] });
        S.spreadRuns = spread.runs;
      }
    }
    if (!rows.length) return;
    const h = document.createElement("h2");
    h.textContent = title;
    const table = document.createElement("table");
    if (head) {
      const tr = document.createElement("tr");
      for (const c of head) { const th = document.createElement("th"); th.textContent = c; tr.appendChild(th); }
      table.appendChild(tr);
    }
    for (const row of rows) {
      const tr = document.createElement("tr");
      row.cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = c;
        if (i > 0) td.className = "value" + (row.bad ? " bad" : "");
        if (i > 0 && row.title) td.title = row.title;
        tr.appendChild(td);
      });
      table.appendChild(tr);
    }
    box.append(h, table);
    if (head) {
      const p = document.createElement("p");
      p.className = "hint";
      const n = S.spreadRuns || 0;
      p.textContent = "A constant last column is the 1/√d law: ten times the dimension, about a third of the spread. " +
        `With ${n} runs a spread is itself uncertain by about 1/√(2(${n}−1)) = ${fmt(100 / Math.sqrt(2 * Math.max(n - 1, 1)), 2)} % of its value (the ± after it); more runs narrow it.`;
      box.appendChild(p);
    }
  }

  function finalSpread(run) {
    const name = S.observable.split("+")[0];
    const rows = run.runs && run.runs[name];
    if (!rows) return null;
    const last = rows.map((r) => r[r.length - 1]).filter((x) => x !== null);
    if (last.length < 2) return null;
    const mean = last.reduce((a, b) => a + b, 0) / last.length;
    const sd = Math.sqrt(last.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (last.length - 1));
    // a standard deviation from n Gaussian runs is uncertain by about 1/sqrt(2(n-1)) of itself
    return mean !== 0 ? { value: Math.abs(sd / mean), runs: last.length } : null;
  }

  // ------------------------------------------------------------------ Monte Carlo jobs
  function setJobButton(running) {
    const b = $("simulate-button");
    b.textContent = running ? "Cancel" : (S.view && S.view.kind === "dimension" ? "Simulate every d" : "Simulate");
    b.className = running ? "cancel" : "primary";
  }

  async function startJob() {
    const v = S.view;
    const extra = { seeds: Number($("seeds").value), seed: Number($("seed").value) };
    if (v.simulate_methods.length) extra.method = $("method").value;
    if (v.kind === "dimension") extra.dims = S.dims;
    else if ($("mc-dim")) extra.dim = Number($("mc-dim").value);
    const msg = $("job-message");
    msg.className = "message";
    try {
      const body = request(extra);
      const data = await api("/api/simulate", body);
      S.job = { id: data.id || data.job, state: "running", view: v, values: body.values, horizon: body.horizon, body: body };
      S.mc = null;
      setJobButton(true);
      $("progress").hidden = false;
      $("progress").value = 0;
      msg.textContent = "starting…";
      drawAll();
      pollJob(S.job);
    } catch (err) {
      msg.className = "message bad";
      msg.textContent = err.message;
      if (err.field) showFieldError(err.field, err.message);
    }
  }

  async function pollJob(job) {
    while (S.job === job) {
      let st;
      try {
        st = await api(`/api/jobs/${job.id}`);
      } catch (err) {
        $("job-message").textContent = err.message;
        break;
      }
      if (S.job !== job) return;
      job.state = st.state;
      $("progress").value = st.progress;
      const msg = $("job-message");
      msg.textContent = `${st.message} · ${Math.round(st.elapsed_s)} s`;
      if (st.partial && st.state === "running") {
        S.mc = Object.assign({ partial: true, values: job.values, horizon: job.horizon, view: job.view }, st.partial);
        drawAll();
        showReadouts();
      }
      if (st.state !== "running") {
        setJobButton(false);
        $("progress").hidden = st.state !== "done";
        if (st.state === "done") {
          S.mc = Object.assign({ values: job.values, horizon: job.horizon, view: job.view }, st.result);
          const n = st.result.runs.length;
          msg.textContent = `done: ${st.result.seeds} runs` + (n > 1 ? ` at each of ${n} dimensions` : "") +
            ` in ${fmt(st.elapsed_s, 2)} s`;
          $("code").textContent = st.result.python;
          drawAll();
          showReadouts();
        } else if (st.state === "cancelled") {
          msg.textContent = "cancelled";
          if (job.view.kind !== "dimension") { S.mc = null; drawAll(); }
        } else {
          msg.className = "message bad";
          msg.textContent = st.message;
        }
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function cancelJob() {
    const job = S.job;
    if (!job) return;
    $("job-message").textContent = "cancelling after the current chunk of runs…";
    try { await api(`/api/jobs/${job.id}/cancel`, {}); } catch (err) { stats.errors.push(err.message); }
  }

  // ------------------------------------------------------------------ drawing
  function drawAll() {
    if (!S.view) return;
    drawCurves();
    if (S.view.diagram) drawDiagram();
    stats.draws += 1;
  }

  function sameValues(a, b) {
    return Object.keys(a).every((k) => a[k] === b[k]);
  }

  function firstIndex(arr, test) {
    for (let i = 0; i < arr.length; i++) if (test(arr[i], i)) return i;
    return -1;
  }

  function drawDimension() {
    const names = S.observable.split("+");
    const th = S.theory;
    const mcHere = S.mc && S.mc.view === S.view ? S.mc : null;
    const stale = mcHere && (!sameValues(mcHere.values, S.values) || mcHere.horizon !== S.horizon);
    const dims = th ? th.curves.map((c) => c.dim) : S.dims;
    const panels = dims.map((d, k) => {
      const color = DIM_COLORS[S.view.dims.indexOf(d) % DIM_COLORS.length];
      const P = { xLog: S.xLog, yLog: S.yLog, series: [], regions: [], vlines: [], legend: [], markers: [],
                  xLabel: S.view.time_label, yLabel: names.join(", "), title: `d = ${d}`, titleBold: true, titleColor: color };
      const run = mcHere && mcHere.runs ? mcHere.runs.find((r) => r.dim === d) : null;
      if (run && run.runs) {
        names.forEach((name) => run.runs[name].forEach((row) => P.series.push(
          { type: "line", x: run.time, y: row, color: color, width: 1.3, alpha: stale ? 0.25 : 0.7 })));
        const spread = finalSpread(run);
        P.title += (spread !== null ? `:  spread ±${fmt(100 * spread.value, 2)} %` : "") + (stale ? " (earlier settings)" : "");
        const i = firstIndex(run.diverged_runs, (c) => c > 0);
        if (i >= 0) P.markers.push({ x: run.time[i], color: COLORS.bad, label: `${run.diverged_runs[run.diverged_runs.length - 1]} of ${run.seeds} diverged` });
        if (k === 0) P.legend.push({ label: `one training run (${run.seeds} per d)`, color: color, kind: "line" });
      }
      const c = th ? th.curves.find((x) => x.dim === d) : null;
      if (c) {
        names.forEach((name) => P.series.push({ type: "line", x: c.time, y: c.observables[name], color: COLORS.ink, width: 2.4 }));
        if (k === 0) P.legend.push({ label: "theory", color: COLORS.ink, kind: "line" });
        const i = firstIndex(c.diverged, (x) => x);
        if (i >= 0) P.regions.push({ x0: c.time[Math.max(0, i - 1)], x1: null, color: COLORS.bad, label: "diverges" });
      }
      return P;
    });
    stats.legend = panels.map((P) => P.title);
    plotPanels($("plot"), panels.length ? panels : [{ empty: "…" }], 0.5);
  }

  function drawCurves() {
    if (S.view.kind === "dimension") { drawDimension(); return; }
    const names = S.observable.split("+");
    const P = { xLog: S.xLog, yLog: S.yLog, series: [], regions: [], vlines: [], legend: [], markers: [],
                xLabel: S.view.time_label, yLabel: names.join(", "), title: caption() };
    const top = [];   // drawn last: the Monte Carlo means sit on the theory line
    const th = S.theory;
    const mc = S.mc && S.mc.view === S.view ? S.mc : null;
    const stale = mc && (!sameValues(mc.values, S.values) || mc.horizon !== S.horizon);
    const alpha = stale ? 0.35 : 1;
    for (const run of mc && mc.runs ? mc.runs : []) {
      names.forEach((name, j) => {
        const color = MC_COLORS[j % MC_COLORS.length];
        const m = run.mean[name], s = run.sem ? run.sem[name] : null;
        if (s) {
          const lo = m.map((v, i) => v === null || s[i] === null ? null : v - 2 * s[i]);
          const hi = m.map((v, i) => v === null || s[i] === null ? null : v + 2 * s[i]);
          P.series.push({ type: "band", x: run.time, lo: lo, hi: hi, color: color, alpha: 0.25 * alpha });
        }
        top.push({ type: "points", x: run.time, y: m, color: color, radius: 4, alpha: alpha, ring: "#fff" });
        const where = run.dim !== null ? ` at d = ${run.dim}` : "";
        const what = names.length > 1 ? ` ${name}` : "";
        P.legend.push({ label: `Monte Carlo${what}${where}: mean ± 2 s.e., ${run.seeds} runs` + (stale ? " (earlier settings)" : ""),
                        color: color, kind: "band" });
        if (run.theory && !stale) {
          P.series.push({ type: "line", x: run.theory.time, y: run.theory.observables[name], color: THEORY_COLORS[j % THEORY_COLORS.length], width: 2, dash: [6, 4] });
          if (j === 0) P.legend.push({ label: `theory at d = ${run.dim}`, color: COLORS.theory, kind: "dash" });
        }
      });
      const i = firstIndex(run.diverged_runs, (c) => c > 0);
      if (i >= 0) {
        const count = run.diverged_runs[run.diverged_runs.length - 1];
        P.markers.push({ x: run.time[i], color: COLORS.bad, label: `${count} of ${run.seeds} runs diverged` });
      }
    }
    if (th) {
      th.curves.forEach((c, k) => {
        names.forEach((name, j) => {
          const color = THEORY_COLORS[j % THEORY_COLORS.length];
          P.series.push({ type: "line", x: c.time, y: c.observables[name], color: color, width: 3 });
          if (k === 0) P.legend.push({ label: `theory${names.length > 1 ? ": " + name : ""}`, color: color, kind: "line" });
        });
        const i = firstIndex(c.diverged, (x) => x);
        if (i >= 0) {
          const edge = S.details && S.details.edge && S.details.edge.value !== null ? S.details.edge : null;
          const text = edge ? `theory diverges: ${edge.field} ≥ ${edge.label.replace(/^.*\s(\S+)$/, "$1")} = ${fmt(edge.value, 4)}` : "theory diverges here";
          P.regions.push({ x0: c.time[Math.max(0, i - 1)], x1: null, color: COLORS.bad, label: k === 0 ? text : null });
        }
      });
      if (P.regions.length) P.legend.push({ label: "diverged (values infinite)", color: COLORS.bad, kind: "region" });
    }
    if (S.details) {
      for (const m of S.details.marks) {
        if (m.value !== null) P.vlines.push({ x: m.value, label: `${m.label} ${fmt(m.value, 4)}`, color: COLORS.mark });
      }
      if (S.details.marks.some((m) => m.value !== null)) P.legend.push({ label: S.details.marks.map((m) => m.label).join(", "), color: COLORS.mark, kind: "dash" });
    }
    P.series = P.series.concat(top);
    stats.legend = P.legend.map((e) => e.label);
    plot($("plot"), P, 0.58);
  }

  function caption() {
    const v = S.view;
    const parts = v.sliders.map((sl) => `${sl.symbol || sl.name} = ${fmt(S.values[sl.name], 4)}`);
    const dims = v.kind === "dimension" ? S.dims.join(", ") : v.theory_dim;
    if (dims !== null && dims !== undefined) parts.push(`d = ${dims}`);
    return `${v.setup}: ${parts.join(",  ")}`;
  }

  function drawDiagram() {
    const canvas = $("diagram");
    const d = S.details && S.details.diagram;
    if (!d) { plot(canvas, { empty: "…" }, 0.42); return; }
    const xs = S.view.sliders.find((s) => s.name === d.x);
    const ys = S.view.sliders.find((s) => s.name === d.y);
    const finite = d.edge.filter((v) => v !== null && v > 0);
    const here = S.values[d.y];
    let yRange = [ys.low, ys.high];
    if (finite.length && ys.scale === "log") {
      const lo = Math.min(Math.min.apply(null, finite) / 8, here / 2);
      const hi = Math.max(Math.max.apply(null, finite) * 2.5, here * 2);
      yRange = [Math.max(ys.low, lo), Math.min(ys.high, hi)];
    }
    const pad = xs.scale === "log" ? [xs.low / 1.12, xs.high * 1.12] : [xs.low - 0.03 * (xs.high - xs.low), xs.high + 0.03 * (xs.high - xs.low)];
    const P = { xLog: xs.scale === "log", yLog: ys.scale === "log", series: [], regions: [], vlines: [], markers: [], legend: [],
                xLabel: `${d.x} ${xs.symbol}`, yLabel: `${d.y} ${ys.symbol}`, xRange: pad, yRange: yRange };
    P.series.push({ type: "fill", x: d.xs, y: d.edge, to: "top", color: COLORS.bad, alpha: 0.13 });
    P.series.push({ type: "fill", x: d.xs, y: d.edge, to: "bottom", color: COLORS.good, alpha: 0.08 });
    P.series.push({ type: "line", x: d.xs, y: d.edge, color: COLORS.bad, width: 3 });
    P.legend.push({ label: "stability edge", color: COLORS.bad, kind: "line" });
    for (const m of d.marks) {
      if (m.value !== null) P.vlines.push({ x: m.value, label: `${m.label} = ${fmt(m.value, 3)}`, color: COLORS.ink });
    }
    const x = S.values[d.x], y = S.values[d.y];
    const edge = S.details.edge && S.details.edge.value;
    const bad = edge !== null && edge !== undefined && y >= edge;
    P.series.push({ type: "points", x: [x], y: [y], color: bad ? COLORS.bad : COLORS.ink, radius: 7 });
    P.legend.push({ label: bad ? "you are here: diverges" : "you are here: converges", color: bad ? COLORS.bad : COLORS.ink, kind: "dot" });
    P.texts = [{ x: pad[0], y: yRange[1], text: "diverges", color: COLORS.bad, align: "left", base: "top" },
               { x: pad[0], y: yRange[0], text: "converges", color: COLORS.good, align: "left", base: "bottom" }];
    P.legendCorner = 2;
    const axes = plot(canvas, P, 0.42);
    canvas.onclick = (ev) => {
      const rect = canvas.getBoundingClientRect();
      const vx = axes.invX(ev.clientX - rect.left), vy = axes.invY(ev.clientY - rect.top);
      if (!isFinite(vx) || !isFinite(vy)) return;
      const at = performance.now();
      setValue(d.x, clampValue(xs, vx), true);
      setValue(d.y, clampValue(ys, vy), true);
      requestTheory(at);
    };
  }

  function clampValue(sl, v) {
    return toValue(sl, toPos(sl, Math.min(sl.high, Math.max(sl.low, v))));
  }

  // ------------------------------------------------------------------ a small plotting kit
  function niceStep(span, n) {
    const raw = span / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
  }

  function ticks(lo, hi, log) {
    const out = [];
    if (log) {
      const a = Math.ceil(Math.log10(lo) - 1e-9), b = Math.floor(Math.log10(hi) + 1e-9);
      if (!isFinite(a) || !isFinite(b)) return [];
      const every = Math.max(1, Math.ceil((b - a + 1) / 8));
      for (let e = a; e <= b; e += every) out.push(Math.pow(10, e));
      if (out.length >= 4) return out;
      const more = [];
      for (let e = a - 1; e <= b + 1; e++) for (const m of [1, 2, 5]) {
        const v = m * Math.pow(10, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) more.push(v);
      }
      if (more.length >= 2 && more.length <= 10) return more;
      if (out.length >= 2) return out;
    }
    const step = niceStep(hi - lo, 5);
    if (!(step > 1e-12 * Math.max(Math.abs(lo), Math.abs(hi)))) return [lo];
    for (let k = Math.ceil(lo / step); k * step <= hi + 1e-9 * step && out.length < 60; k++) out.push(k === 0 ? 0 : k * step);
    return out;
  }

  function plot(canvas, P, aspect) {
    return plotPanels(canvas, [P], aspect)[0];
  }

  // the x and y ranges that show every panel's data (a run that blows up is clipped far above
  // the theory instead of squashing the curves)
  function dataRanges(panels) {
    const P0 = panels[0];
    const okX = (v) => v !== null && isFinite(v) && (!P0.xLog || v > 0);
    const okY = (v) => v !== null && isFinite(v) && (!P0.yLog || v > 0);
    let xr = P0.xRange ? P0.xRange.slice() : [Infinity, -Infinity];
    let yr = P0.yRange ? P0.yRange.slice() : [Infinity, -Infinity];
    const theoryY = [];
    for (const P of panels) for (const s of P.series) {
      if (s.type === "fill") continue;
      s.x.forEach((x, i) => {
        if (!okX(x)) return;
        if (!P0.xRange) { xr[0] = Math.min(xr[0], x); xr[1] = Math.max(xr[1], x); }
        const vals = s.type === "band" ? [s.lo[i], s.hi[i]] : [s.y[i]];
        for (const y of vals) {
          if (!okY(y)) continue;
          if (s.type === "line" && s.width >= 1.8) theoryY.push(y);
          if (!P0.yRange) { yr[0] = Math.min(yr[0], y); yr[1] = Math.max(yr[1], y); }
        }
      });
    }
    if (!(xr[1] - xr[0] > 1e-9 * Math.max(Math.abs(xr[0]), Math.abs(xr[1])))) xr = P0.xLog ? [1e-3, 1] : [0, 1];
    if (!P0.yRange && theoryY.length) {
      const top = Math.max.apply(null, theoryY);
      const bottom = Math.min.apply(null, theoryY);
      yr[1] = P0.yLog ? Math.min(yr[1], top * 1e4) : Math.min(yr[1], top + 4 * Math.max(top - bottom, Math.abs(top)));
    }
    if (!(yr[1] - yr[0] > 1e-9 * Math.max(Math.abs(yr[0]), Math.abs(yr[1])))) {
      const v = isFinite(yr[0]) && yr[0] !== 0 ? yr[0] : 1;
      yr = P0.yLog ? [v / 10, v * 10] : [v - 1, v + 1];
    }
    if (!P0.yRange) {
      if (P0.yLog) { yr = [yr[0] / Math.pow(yr[1] / yr[0], 0.04), yr[1] * Math.pow(yr[1] / yr[0], 0.06)]; }
      else { const pad = 0.05 * (yr[1] - yr[0]); yr = [yr[0] - pad, yr[1] + pad]; }
    }
    return { xr: xr, yr: yr, okX: okX, okY: okY };
  }

  // one canvas, panels side by side sharing their axes' ranges
  function plotPanels(canvas, panels, aspect) {
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 800;
    const height = Math.round(Math.min(620, Math.max(300, width * aspect)));
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "15px system-ui, sans-serif";
    if (panels[0].empty) {
      ctx.fillStyle = COLORS.muted;
      ctx.fillText(panels[0].empty, 20, 30);
      return [null];
    }
    const R = dataRanges(panels);
    const top = panels.some((P) => P.title) ? 34 : 16;
    const left = 78, gap = 48, right = width - 18;
    const w = (right - left - gap * (panels.length - 1)) / panels.length;
    return panels.map((P, k) => {
      const box = { left: left + k * (w + gap), right: left + k * (w + gap) + w, top: top, bottom: height - 58 };
      return drawPanel(ctx, P, box, R, { yTitle: k === 0, height: height });
    });
  }

  function drawPanel(ctx, P, box, R, opts) {
    const xr = R.xr, yr = R.yr, okX = R.okX, okY = R.okY;
    if (P.title) {
      ctx.font = P.titleBold ? "bold 15px system-ui, sans-serif" : "14px system-ui, sans-serif";
      ctx.fillStyle = P.titleColor || COLORS.muted;
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillText(P.title, box.left, 9);
    }
    const fx = P.xLog ? Math.log10 : (v) => v, fy = P.yLog ? Math.log10 : (v) => v;
    const gx = P.xLog ? (u) => Math.pow(10, u) : (u) => u, gy = P.yLog ? (u) => Math.pow(10, u) : (u) => u;
    const X = (v) => box.left + (fx(v) - fx(xr[0])) / (fx(xr[1]) - fx(xr[0])) * (box.right - box.left);
    const Y = (v) => box.bottom - (fy(v) - fy(yr[0])) / (fy(yr[1]) - fy(yr[0])) * (box.bottom - box.top);
    const invX = (px) => gx(fx(xr[0]) + (px - box.left) / (box.right - box.left) * (fx(xr[1]) - fx(xr[0])));
    const invY = (py) => gy(fy(yr[0]) + (box.bottom - py) / (box.bottom - box.top) * (fy(yr[1]) - fy(yr[0])));
    // grid and ticks
    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = COLORS.ink;
    ctx.font = "14px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of ticks(xr[0], xr[1], P.xLog)) {
      const px = X(t);
      ctx.beginPath(); ctx.moveTo(px, box.top); ctx.lineTo(px, box.bottom); ctx.stroke();
      ctx.fillText(tickLabel(t, P.xLog), px, box.bottom + 6);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of ticks(yr[0], yr[1], P.yLog)) {
      const py = Y(t);
      ctx.beginPath(); ctx.moveTo(box.left, py); ctx.lineTo(box.right, py); ctx.stroke();
      ctx.fillText(tickLabel(t, P.yLog), box.left - 6, py);
    }
    ctx.strokeStyle = COLORS.ink;
    ctx.strokeRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
    // axis labels
    ctx.font = "bold 15px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(P.xLabel + (P.xLog ? "   (log scale)" : ""), (box.left + box.right) / 2, opts.height - 8);
    if (opts.yTitle) {
      ctx.save();
      ctx.translate(18, (box.top + box.bottom) / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = "middle";
      ctx.fillText(P.yLabel + (P.yLog ? "   (log scale)" : ""), 0, 0);
      ctx.restore();
    }
    // everything inside the box is clipped to it
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.right - box.left, box.bottom - box.top);
    ctx.clip();
    const later = [];   // labels drawn over the data
    for (const r of P.regions) {
      const x0 = okX(r.x0) ? Math.max(box.left, X(r.x0)) : box.left;
      const x1 = r.x1 === null ? box.right : X(r.x1);
      ctx.fillStyle = "rgba(198, 40, 40, 0.10)";
      ctx.fillRect(x0, box.top, x1 - x0, box.bottom - box.top);
      ctx.strokeStyle = "rgba(198, 40, 40, 0.35)";
      ctx.lineWidth = 1;
      for (let k = x0 - (box.bottom - box.top); k < x1; k += 14) {
        ctx.beginPath(); ctx.moveTo(k, box.bottom); ctx.lineTo(k + (box.bottom - box.top), box.top); ctx.stroke();
      }
      ctx.strokeStyle = r.color; ctx.lineWidth = 2.5;
      ctx.beginPath(); ctx.moveTo(x0, box.top); ctx.lineTo(x0, box.bottom); ctx.stroke();
      if (r.label) later.push(() => {
        ctx.font = "bold 16px system-ui, sans-serif";
        ctx.textAlign = x0 > (box.left + box.right) / 2 ? "right" : "left";
        ctx.textBaseline = "bottom";
        const tx = ctx.textAlign === "left" ? x0 + 8 : x0 - 8;
        ctx.fillStyle = "rgba(255,255,255,0.92)";
        const w = ctx.measureText(r.label).width;
        ctx.fillRect(ctx.textAlign === "left" ? tx - 3 : tx - w - 3, box.bottom - 32, w + 6, 24);
        ctx.fillStyle = r.color;
        ctx.fillText(r.label, tx, box.bottom - 12);
      });
    }
    for (const s of P.series) drawSeries(ctx, s, X, Y, okX, okY, box, yr[0]);
    // [x0, y0, x1, y1, weight] of each vertical line's label (weight 1000: the legend never
    // hides one) and of the line itself (weight 20), for drawLegend's choice of corner
    const marks = [];
    const markText = (label, x, y) => {
      const w = ctx.measureText(label).width;
      const x0 = ctx.textAlign === "left" ? x : x - w;
      const y0 = ctx.textBaseline === "top" ? y : y - 9;
      marks.push([x0, y0, x0 + w, y0 + 18, 1000]);
      ctx.fillText(label, x, y);
    };
    for (const v of P.vlines) {
      if (!okX(v.x)) continue;
      const px = X(v.x);
      ctx.strokeStyle = v.color; ctx.lineWidth = 2; ctx.setLineDash([7, 5]);
      ctx.beginPath(); ctx.moveTo(px, box.top); ctx.lineTo(px, box.bottom); ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = "14px system-ui, sans-serif";
      ctx.fillStyle = v.color;
      ctx.textAlign = px > (box.left + box.right) / 2 ? "right" : "left";
      ctx.textBaseline = "top";
      markText(v.label, px + (ctx.textAlign === "left" ? 6 : -6), box.top + 6);
      marks.push([px - 2, box.top, px + 2, box.bottom, 20]);
    }
    for (const m of P.markers) {
      if (!okX(m.x)) continue;
      const px = X(m.x), py = box.top + 22;
      ctx.strokeStyle = m.color; ctx.lineWidth = 3.5;
      ctx.beginPath(); ctx.moveTo(px - 8, py - 8); ctx.lineTo(px + 8, py + 8); ctx.moveTo(px + 8, py - 8); ctx.lineTo(px - 8, py + 8); ctx.stroke();
      ctx.lineWidth = 1.5; ctx.setLineDash([3, 4]);
      ctx.beginPath(); ctx.moveTo(px, py + 10); ctx.lineTo(px, box.bottom); ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = "bold 14px system-ui, sans-serif";
      ctx.fillStyle = m.color;
      ctx.textAlign = px > (box.left + box.right) / 2 ? "right" : "left";
      ctx.textBaseline = "middle";
      markText(m.label, px + (ctx.textAlign === "left" ? 14 : -14), py);
      marks.push([px - 2, box.top, px + 2, box.bottom, 20]);
    }
    for (const draw of later) draw();
    for (const t of P.texts || []) {
      ctx.font = "bold 15px system-ui, sans-serif";
      ctx.fillStyle = t.color;
      ctx.textAlign = t.align;
      ctx.textBaseline = t.base;
      ctx.fillText(t.text, X(t.x) + (t.align === "left" ? 8 : -8), Y(t.y) + (t.base === "top" ? 6 : -6));
    }
    ctx.restore();
    drawLegend(ctx, P, box, X, Y, okX, okY, marks);
    return { X: X, Y: Y, invX: invX, invY: invY, box: box };
  }

  function withAlpha(ctx, alpha, fn) {
    ctx.save();
    ctx.globalAlpha = alpha === undefined ? 1 : alpha;
    fn();
    ctx.restore();
  }

  function drawSeries(ctx, s, X, Y, okX, okY, box, yBottom) {
    withAlpha(ctx, s.alpha, () => {
      if (s.type === "line") {
        ctx.strokeStyle = s.color; ctx.lineWidth = s.width || 2; ctx.lineJoin = "round";
        ctx.setLineDash(s.dash || []);
        ctx.beginPath();
        let open = false;
        s.x.forEach((x, i) => {
          const y = s.y[i];
          if (!okX(x) || !okY(y)) { open = false; return; }
          if (open) ctx.lineTo(X(x), Y(y)); else ctx.moveTo(X(x), Y(y));
          open = true;
        });
        ctx.stroke();
        ctx.setLineDash([]);
      } else if (s.type === "points") {
        ctx.fillStyle = s.color;
        ctx.strokeStyle = s.ring || s.color;
        ctx.lineWidth = 1.2;
        s.x.forEach((x, i) => {
          const y = s.y[i];
          if (!okX(x) || !okY(y)) return;
          ctx.beginPath(); ctx.arc(X(x), Y(y), s.radius || 3, 0, 2 * Math.PI); ctx.fill();
          if (s.ring) ctx.stroke();
        });
      } else if (s.type === "band") {
        ctx.fillStyle = s.color;
        let seg = [];
        const flush = () => {
          if (seg.length > 1) {
            ctx.beginPath();
            seg.forEach(([x, lo, hi], k) => { if (k) ctx.lineTo(X(x), Y(hi)); else ctx.moveTo(X(x), Y(hi)); });
            for (let k = seg.length - 1; k >= 0; k--) ctx.lineTo(X(seg[k][0]), Y(seg[k][1]));
            ctx.closePath(); ctx.fill();
          }
          seg = [];
        };
        s.x.forEach((x, i) => {
          let lo = s.lo[i], hi = s.hi[i];
          if (!okX(x) || hi === null || lo === null || !isFinite(hi) || !isFinite(lo)) { flush(); return; }
          if (!okY(hi)) { flush(); return; }
          if (!okY(lo)) lo = yBottom;
          seg.push([x, lo, hi]);
        });
        flush();
      } else if (s.type === "fill") {
        ctx.fillStyle = s.color;
        const pts = s.x.map((x, i) => [x, s.y[i]]).filter(([x, y]) => okX(x) && okY(y));
        if (pts.length < 2) return;
        ctx.beginPath();
        const edgeY = s.to === "top" ? box.top : box.bottom;
        ctx.moveTo(box.left, edgeY);
        ctx.lineTo(box.left, Y(pts[0][1]));
        for (const [x, y] of pts) ctx.lineTo(X(x), Y(y));
        ctx.lineTo(box.right, Y(pts[pts.length - 1][1]));
        ctx.lineTo(box.right, edgeY);
        ctx.closePath(); ctx.fill();
      }
    });
  }

  function drawLegend(ctx, P, box, X, Y, okX, okY, marks) {
    if (!P.legend.length) return;
    ctx.font = "14px system-ui, sans-serif";
    const lineH = 21, pad = 8, sw = 30;
    const w = Math.max.apply(null, P.legend.map((e) => ctx.measureText(e.label).width)) + sw + 3 * pad;
    const h = P.legend.length * lineH + pad;
    // the corner with the fewest points under it, never over a vertical line's label
    const corners = [[box.right - w - 8, box.top + 8], [box.left + 8, box.top + 8],
                     [box.right - w - 8, box.bottom - h - 8], [box.left + 8, box.bottom - h - 8]];
    let best = corners[0], fewest = Infinity;
    const allowed = P.legendCorner !== undefined ? [corners[P.legendCorner]] : corners;
    for (const [cx, cy] of allowed) {
      let n = 0;
      for (const s of P.series) {
        if (s.type === "fill") continue;
        const ys = s.type === "band" ? s.hi : s.y;
        s.x.forEach((x, i) => {
          if (!okX(x) || !okY(ys[i])) return;
          const px = X(x), py = Y(ys[i]);
          if (px >= cx && px <= cx + w && py >= cy && py <= cy + h) n += s.type === "line" && s.width >= 1.8 ? 5 : 1;
        });
      }
      for (const [x0, y0, x1, y1, weight] of marks) {
        if (x1 >= cx && x0 <= cx + w && y1 >= cy && y0 <= cy + h) n += weight;
      }
      if (n < fewest) { fewest = n; best = [cx, cy]; }
    }
    const [lx, ly] = best;
    ctx.fillStyle = "rgba(255,255,255,0.92)";
    ctx.strokeStyle = "#c9d1da";
    ctx.lineWidth = 1;
    ctx.fillRect(lx, ly, w, h);
    ctx.strokeRect(lx, ly, w, h);
    P.legend.forEach((e, k) => {
      const y = ly + pad + k * lineH + lineH / 2 - 2;
      const x = lx + pad;
      ctx.strokeStyle = e.color; ctx.fillStyle = e.color;
      if (e.kind === "band") {
        withAlpha(ctx, 0.3, () => ctx.fillRect(x, y - 6, sw, 12));
        ctx.beginPath(); ctx.arc(x + sw / 2, y, 3, 0, 2 * Math.PI); ctx.fill();
      } else if (e.kind === "region") {
        withAlpha(ctx, 0.2, () => ctx.fillRect(x, y - 7, sw, 14));
        ctx.lineWidth = 2.5; ctx.beginPath(); ctx.moveTo(x, y - 7); ctx.lineTo(x, y + 7); ctx.stroke();
      } else if (e.kind === "dot") {
        ctx.beginPath(); ctx.arc(x + sw / 2, y, 6, 0, 2 * Math.PI); ctx.fill();
      } else {
        ctx.lineWidth = 3; ctx.setLineDash(e.kind === "dash" ? [6, 4] : []);
        ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + sw, y); ctx.stroke();
        ctx.setLineDash([]);
      }
      ctx.fillStyle = COLORS.ink;
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      ctx.fillText(e.label, x + sw + pad, y);
    });
  }

  // ------------------------------------------------------------------ copy as Python
  async function copyCode() {
    const code = $("code").textContent;
    const button = $("copy");
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(code);
        ok = true;
      }
    } catch (err) { ok = false; }
    if (!ok) {
      const area = document.createElement("textarea");
      area.value = code;
      area.setAttribute("readonly", "");
      area.style.position = "fixed"; area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      area.remove();
    }
    $("code").hidden = false;
    $("show-code").textContent = "Hide code";
    $("show-code").setAttribute("aria-expanded", "true");
    button.textContent = ok ? "Copied ✓" : "Select the code below";
    setTimeout(() => { button.textContent = "Copy as Python"; }, 1800);
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    $("observable").addEventListener("change", () => { S.observable = $("observable").value; drawAll(); showReadouts(); requestTheory(performance.now()); });
    $("horizon").addEventListener("change", () => { S.horizon = Number($("horizon").value); requestTheory(performance.now()); });
    $("x-log").addEventListener("click", () => { S.xLog = true; updateToggles(); drawAll(); });
    $("x-linear").addEventListener("click", () => { S.xLog = false; updateToggles(); drawAll(); });
    $("y-log").addEventListener("click", () => { S.yLog = true; updateToggles(); drawAll(); });
    $("y-linear").addEventListener("click", () => { S.yLog = false; updateToggles(); drawAll(); });
    $("simulate-button").addEventListener("click", () => {
      if (S.job && S.job.state === "running") cancelJob(); else startJob();
    });
    $("copy").addEventListener("click", copyCode);
    $("show-code").addEventListener("click", () => {
      const pre = $("code");
      pre.hidden = !pre.hidden;
      $("show-code").textContent = pre.hidden ? "Show code" : "Hide code";
      $("show-code").setAttribute("aria-expanded", String(!pre.hidden));
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawAll, 100); });
    window.addEventListener("hashchange", () => { if (location.hash !== S.lastHash) route(); });
  }

  async function start() {
    wire();
    try {
      S.catalog = await api("/api/views");
    } catch (err) {
      $("title").textContent = "Could not reach the hdsgd teach server";
      setStatusText(err.message, true);
      return;
    }
    $("version").textContent = "v" + S.catalog.version;
    buildNav();
    if (!S.catalog.views.length) {
      $("title").textContent = "No view is available in this installation";
      return;
    }
    route();
  }

  start();
})();
