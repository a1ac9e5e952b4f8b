// The stems player: the session's mix rebuilt from its parts with the Web Audio API.
//
// Streamlit's component protocol by hand (no build step): post "streamlit:componentReady", receive
// "streamlit:render" with the page's args, post "streamlit:setFrameHeight" and "streamlit:setComponentValue".
// The page sends, per mix ("before" and "after"), each track's signal id, level and pan, the reverb bus and
// the limiter envelope (imgext/mix/preview.py), plus the compressed bytes of the signals this iframe does not
// hold yet (one `blob`, cut by `blob_index`; a signal silent in places comes as its nonzero spans).  Both mixes
// run in sync, so A/B is a 20 ms gain crossfade; a new render swaps the changed signals in at the current
// position (a 10 ms crossfade), it never restarts.
// The "before" mix comes only while A is chosen (the page renders it then): until it arrives B plays on.
// A level preview (`settle` set: new levels on the signals held) asks for its render once no new one came
// for `settle_ms` (the sliders rested), by reporting `settle`.
(function () {
  "use strict";

  const FADE_S = 0.02;   // A/B crossfade
  const SWAP_S = 0.01;   // crossfade of a swapped-in signal
  const LEAD_S = 0.05;   // scheduling lead: every start lands on the same sample of the context clock
  const SMOOTH_S = 0.005; // time constant of level / pan changes
  const MIXES = ["before", "after"];
  const REVERB = "reverb";

  const send = (type, data) => window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*");
  const mount = Math.random().toString(36).slice(2, 10);

  const S = {
    ctx: null, master: null, analyser: null, buses: {}, voices: {}, buffers: new Map(), pending: new Map(),
    args: null, rows: [], frames: 0, dur: 0, t0: null, started: false, ab: "after",
    muted: new Set(), soloed: new Set(), levels: {}, pans: {}, revision: null, restored: false,
    seq: 0, swaps: 0, decoded: 0, renders: 0, applied: 0, errors: [], asked: "", reportTimer: null,
    settleTimer: null, settleAsk: null, settling: null, heard: null, keepBefore: new Set(), settles: 0,
  };

  const db = (x) => Math.pow(10, x / 20);
  const now = () => S.ctx.currentTime;
  const posAt = (t) => (S.t0 === null || !S.dur ? 0 : ((((t - S.t0) % S.dur) + S.dur) % S.dur));

  function ramp(param, value, linear, fresh) {
    const t = now();
    if (fresh) { param.value = value; return; }
    if (linear) {
      param.cancelScheduledValues(t);
      param.setValueAtTime(param.value, t);
      param.linearRampToValueAtTime(value, t + FADE_S);
    } else {
      param.setTargetAtTime(value, t, SMOOTH_S);
    }
  }

  function rms(analyser) {
    if (!analyser) return -200;
    const d = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(d);
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i] * d[i];
    const r = Math.sqrt(s / d.length);
    return r > 1e-10 ? 20 * Math.log10(r) : -200;
  }

  // -- the context and the two buses ---------------------------------------------------------------------------
  function ensureContext(sampleRate) {
    if (S.ctx) return;
    S.ctx = new AudioContext({ sampleRate, latencyHint: "playback" });
    S.ctx.suspend(); // with an autoplay policy that lets it run, it still waits for Play
    S.master = S.ctx.createGain();
    S.analyser = S.ctx.createAnalyser();
    S.analyser.fftSize = 4096;
    S.master.connect(S.analyser);
    S.analyser.connect(S.ctx.destination);
    for (const m of MIXES) {
      const bus = S.ctx.createGain();
      const env = S.ctx.createGain();
      const xfade = S.ctx.createGain();
      const analyser = S.ctx.createAnalyser();
      analyser.fftSize = 4096;
      xfade.gain.value = m === S.ab ? 1 : 0;
      bus.connect(env);
      env.connect(xfade);
      env.connect(analyser);
      xfade.connect(S.master);
      S.buses[m] = { bus, env, xfade, analyser, envSlot: null };
      S.voices[m] = {};
    }
  }

  // -- signals: decode once, keep by id ------------------------------------------------------------------------
  function asBytes(blob) {
    if (!blob) return null;
    if (blob instanceof ArrayBuffer) return new Uint8Array(blob);
    if (ArrayBuffer.isView(blob)) return new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength);
    return null;
  }

  function fit(buf) {
    if (buf.length === S.frames) return buf;
    const out = S.ctx.createBuffer(buf.numberOfChannels, S.frames, buf.sampleRate);
    for (let c = 0; c < buf.numberOfChannels; c++) {
      const d = buf.getChannelData(c);
      out.copyToChannel(d.subarray(0, Math.min(S.frames, d.length)), c);
    }
    return out;
  }

  // A sparse signal comes as its nonzero spans only, one after the other (`spans`: [start, length] in samples
  // at the page's rate, `n_samples` its whole length): each goes back in place, the rest stays silent.
  function placeSpans(decoded, spans, channels, rate) {
    const k = S.ctx.sampleRate / rate; // 1 unless the browser would not open the context at the page's rate
    const out = S.ctx.createBuffer(channels, S.frames, S.ctx.sampleRate);
    let from = 0;
    for (const [start, length] of spans) {
      const src = Math.round(from * k), dst = Math.round(start * k);
      const n = Math.min(Math.round((from + length) * k) - src, S.frames - dst);
      from += length;
      if (n <= 0 || !decoded) continue;
      for (let c = 0; c < channels; c++) {
        out.copyToChannel(decoded.getChannelData(c).subarray(src, src + n), c, dst);
      }
    }
    return out;
  }

  function decodeBlob(args) {
    const bytes = asBytes(args.blob);
    const jobs = [];
    for (const e of args.blob_index || []) {
      const sparse = Array.isArray(e.spans);
      const silent = sparse && !e.length; // all zero: nothing to decode
      if ((!bytes && !silent) || S.buffers.has(e.id) || S.pending.has(e.id)) continue;
      const decoding = silent ? Promise.resolve(null)
        : S.ctx.decodeAudioData(bytes.slice(e.offset, e.offset + e.length).buffer);
      const job = decoding.then((b) => {
        S.buffers.set(e.id, sparse ? placeSpans(b, e.spans, b ? b.numberOfChannels : e.channels || 1, args.sample_rate)
                                     : fit(b));
        S.decoded += 1;
      }).catch((err) => S.errors.push(`decode ${e.id}: ${err}`)).finally(() => S.pending.delete(e.id));
      S.pending.set(e.id, job);
      jobs.push(job);
    }
    return jobs;
  }

  function neededIds(args) {
    const ids = new Set(args.mixes.before ? [] : S.keepBefore); // A's signals are kept while A is not sent
    for (const m of MIXES) {
      const mix = args.mixes[m];
      if (!mix) continue;
      for (const t of mix.tracks) {
        ids.add(t.signal);
        if (t.side) ids.add(t.side);
        if (t.wet) ids.add(t.wet);
      }
      if (mix.reverb) ids.add(mix.reverb);
      if (mix.envelope) ids.add(mix.envelope);
    }
    return ids;
  }

  // -- voices: one source + gain + panner per object and mix ---------------------------------------------------
  function startSource(slot, buffer, when) {
    const src = S.ctx.createBufferSource();
    src.buffer = buffer;
    src.loop = true;
    src.loopStart = 0;
    src.loopEnd = S.dur;
    const fade = S.ctx.createGain();
    src.connect(fade);
    for (const dest of slot.dests) {
      if (dest instanceof AudioParam) src.connect(dest); else fade.connect(dest);
    }
    src.start(when, posAt(when));
    return { src, fade };
  }

  // Put `id`'s buffer into `slot`, at the current position: the old one fades out as the new one fades in.
  function setSignal(slot, id) {
    const buffer = S.buffers.get(id);
    if (slot.id === id || !buffer) return;
    const when = now() + LEAD_S;
    const fresh = startSource(slot, buffer, when);
    const paramOnly = slot.dests.every((d) => d instanceof AudioParam);
    if (!slot.node && slot.fadeIn) { // a part that joins a signal swapping at the same time (a ducked track's wet part)
      fresh.fade.gain.setValueAtTime(0, when);
      fresh.fade.gain.linearRampToValueAtTime(1, when + SWAP_S);
    }
    if (slot.node) {
      const old = slot.node;
      if (paramOnly) {
        old.src.stop(when); // an envelope switches on one sample
      } else {
        old.fade.gain.setValueAtTime(1, when);
        old.fade.gain.linearRampToValueAtTime(0, when + SWAP_S);
        old.src.stop(when + SWAP_S + 0.02);
      }
      old.src.onended = () => { old.src.disconnect(); old.fade.disconnect(); };
      if (!paramOnly) {
        fresh.fade.gain.setValueAtTime(0, when);
        fresh.fade.gain.linearRampToValueAtTime(1, when + SWAP_S);
      }
      S.swaps += 1;
    }
    slot.node = fresh;
    slot.id = id;
  }

  function dropSlot(slot) {
    if (!slot || !slot.node) return;
    const t = now();
    slot.node.fade.gain.setTargetAtTime(0, t, SMOOTH_S);
    slot.node.src.stop(t + 0.05);
  }

  function newVoice(m, isReverb) {
    const v = { level: S.ctx.createGain(), user: S.ctx.createGain(), reverb: isReverb, fresh: true };
    v.user.connect(S.buses[m].bus);
    v.analyser = S.ctx.createAnalyser(); // what this object adds to its mix, after mute / solo / level
    v.analyser.fftSize = 4096;
    v.user.connect(v.analyser);
    if (isReverb) {
      v.level.connect(v.user);
      v.main = { dests: [v.level], node: null, id: null };
      return v;
    }
    v.pan = S.ctx.createStereoPanner();
    v.level.connect(v.pan);
    v.pan.connect(v.user);
    v.main = { dests: [v.level], node: null, id: null };
    // a ducked track's wet part (its full duck minus the dry track) at level * EQ strength, through the same pan
    v.wetGain = S.ctx.createGain();
    v.wetGain.connect(v.pan);
    v.wet = { dests: [v.wetGain], node: null, id: null, fadeIn: true };
    // a wide (area) track's companion: L = +s cos(theta), R = -s sin(theta), in mid/side with the track
    v.sideL = S.ctx.createGain();
    v.sideR = S.ctx.createGain();
    v.merge = S.ctx.createChannelMerger(2);
    v.sideL.connect(v.merge, 0, 0);
    v.sideR.connect(v.merge, 0, 1);
    v.merge.connect(v.user);
    v.side = { dests: [v.sideL, v.sideR], node: null, id: null };
    return v;
  }

  function audible(name) {
    if (S.muted.has(name)) return false;
    return S.soloed.size === 0 || S.soloed.has(name);
  }

  function panOf(name, fallback) {
    return Object.prototype.hasOwnProperty.call(S.pans, name) ? S.pans[name] : fallback;
  }

  function applyControls() {
    for (const m of MIXES) {
      for (const [name, v] of Object.entries(S.voices[m])) {
        const fresh = v.fresh;
        v.fresh = false;
        ramp(v.user.gain, audible(name) ? db(S.levels[name] || 0) : 0, false, fresh);
        if (v.reverb) continue;
        const pan = Math.max(-1, Math.min(1, panOf(name, v.basePan)));
        ramp(v.pan.pan, pan, false, fresh);
        const theta = (pan + 1) * Math.PI / 4;
        ramp(v.sideL.gain, v.sideLevel * Math.cos(theta), false, fresh);
        ramp(v.sideR.gain, -v.sideLevel * Math.sin(theta), false, fresh);
      }
    }
  }

  // Bring the graph to the latest args (every id they name is decoded by now).
  function apply(args) {
    if (S.t0 === null) S.t0 = now() + LEAD_S;
    for (const m of MIXES) {
      const mix = args.mixes[m];
      const voices = S.voices[m];
      if (!mix) { // not sent (A while B is listened to): silence its voices, keep its signals for when it returns
        for (const name of Object.keys(voices)) { dropSlot(voices[name].main); dropSlot(voices[name].side); dropSlot(voices[name].wet); delete voices[name]; }
        const bus = S.buses[m];
        if (bus.envSlot) { bus.envSlot.node.src.stop(now() + LEAD_S); bus.env.gain.setValueAtTime(1, now() + LEAD_S); bus.envSlot = null; }
        continue;
      }
      if (m === "before") {
        S.keepBefore = new Set();
        for (const t of mix.tracks) { S.keepBefore.add(t.signal); if (t.side) S.keepBefore.add(t.side); if (t.wet) S.keepBefore.add(t.wet); }
      }
      const present = new Set();
      for (const t of mix.tracks) {
        present.add(t.name);
        const v = voices[t.name] || (voices[t.name] = newVoice(m, false));
        v.basePan = t.pan;
        v.sideLevel = t.side ? t.side_level : 0;
        ramp(v.level.gain, t.level, false, v.fresh);
        setSignal(v.main, t.signal);
        if (t.side) setSignal(v.side, t.side);
        else if (v.side.node) { dropSlot(v.side); v.side.node = null; v.side.id = null; }
        ramp(v.wetGain.gain, t.wet ? t.wet_level : 0, false, v.fresh);
        if (t.wet) setSignal(v.wet, t.wet);
        else if (v.wet.node) { dropSlot(v.wet); v.wet.node = null; v.wet.id = null; }
      }
      if (mix.reverb) {
        present.add(REVERB);
        const v = voices[REVERB] || (voices[REVERB] = newVoice(m, true));
        ramp(v.level.gain, mix.reverb_level, false, v.fresh);
        setSignal(v.main, mix.reverb);
      }
      for (const name of Object.keys(voices)) {
        if (present.has(name)) continue;
        dropSlot(voices[name].main);
        dropSlot(voices[name].side);
        if (voices[name].wet) dropSlot(voices[name].wet);
        delete voices[name];
      }
      const bus = S.buses[m];
      if (mix.envelope) {
        if (!bus.envSlot) {
          bus.env.gain.setValueAtTime(0, now() + LEAD_S); // the envelope signal drives the gain
          bus.envSlot = { dests: [bus.env.gain], node: null, id: null };
        }
        setSignal(bus.envSlot, mix.envelope);
      } else if (bus.envSlot) {
        const when = now() + LEAD_S;
        bus.envSlot.node.src.stop(when);
        bus.env.gain.setValueAtTime(1, when);
        bus.envSlot = null;
      }
    }
    applyControls();
    crossfade();
    // forget the signals no render names any more (the page sends them again when they come back)
    const keep = neededIds(args);
    for (const id of [...S.buffers.keys()]) if (!keep.has(id)) S.buffers.delete(id);
    S.applied += 1;
  }

  // -- talking to the page -------------------------------------------------------------------------------------
  // The mix heard: the one chosen, or B while A is on its way.
  function crossfade() {
    const heard = S.args && S.args.mixes[S.ab] ? S.ab : "after";
    if (heard === S.heard) return;
    S.heard = heard;
    for (const m of MIXES) ramp(S.buses[m].xfade.gain, m === heard ? 1 : 0, true);
  }

  function settleLater(args) {
    clearTimeout(S.settleTimer);
    S.settleTimer = null;
    S.settling = args.settle || null;
    if (!args.settle) return;
    S.settleTimer = setTimeout(() => { S.settleAsk = args.settle; S.settles += 1; report(0); }, args.settle_ms || 1500);
  }

  function snapshot() {
    return {
      mount, seq: ++S.seq, revision: S.revision, ab: S.ab, settle: S.settleAsk,
      have: [...S.buffers.keys(), ...S.pending.keys()],
      muted: [...S.muted], soloed: [...S.soloed],
      levels_db: Object.assign({}, S.levels), pans: Object.assign({}, S.pans),
    };
  }

  function report(delay) {
    clearTimeout(S.reportTimer);
    S.reportTimer = setTimeout(() => send("streamlit:setComponentValue", { value: snapshot(), dataType: "json" }), delay);
  }

  async function onRender(args) {
    S.renders += 1;
    clearTimeout(S.settleTimer); // a newer render: the sliders moved again
    S.args = args;
    ensureContext(args.sample_rate);
    if (!S.restored) {
      S.restored = true;
      const st = args.state;
      if (st && st.revision === args.revision) { // back on the page: the same listening state
        S.muted = new Set(st.muted || []);
        S.soloed = new Set(st.soloed || []);
        S.levels = Object.assign({}, st.levels_db || {});
        S.pans = Object.assign({}, st.pans || {});
        S.ab = st.ab === "before" ? "before" : "after";
      }
      S.revision = args.revision;
    } else if (args.revision !== S.revision) { // the page applied levels and pans to the mix: start from it
      S.revision = args.revision;
      S.levels = {};
      S.pans = {};
    }
    S.rows = args.rows || [];
    drawRows();
    if (args.n_samples && args.sample_rate) { // the loop's length on the context's clock (decoded buffers fit it)
      S.frames = Math.round(args.n_samples * S.ctx.sampleRate / args.sample_rate);
      S.dur = S.frames / S.ctx.sampleRate;
    }
    decodeBlob(args);
    while (S.pending.size) await Promise.all([...S.pending.values()]); // this render's and earlier ones'
    if (S.args !== args) return; // a newer render came while decoding: it applies
    const missing = [...neededIds(args)].filter((id) => !S.buffers.has(id));
    if (missing.length) {
      const key = missing.sort().join(",");
      if (key !== S.asked) { S.asked = key; report(0); } // ask the page for what this iframe lacks
      setStatus(`waiting for ${missing.length} sound(s) …`);
      return;
    }
    S.asked = "";
    apply(args);
    settleLater(args);
    document.getElementById("play").disabled = false;
    setStatus(S.errors.length ? S.errors[S.errors.length - 1] : `${S.buffers.size} sounds ready`);
  }

  function setStatus(text) { document.getElementById("status").textContent = text; }

  // -- the controls --------------------------------------------------------------------------------------------
  function el(tag, props, children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const c of children || []) e.append(c);
    return e;
  }

  function drawRows() {
    const body = document.getElementById("rows");
    const sig = JSON.stringify(S.rows.map((r) => [r.name, r.role, r.pan])) + S.revision;
    if (body.dataset.sig === sig) return;
    body.dataset.sig = sig;
    body.textContent = "";
    S.rows.forEach((r, i) => {
      const mute = el("button", { type: "button", textContent: "M", title: "Mute", className: S.muted.has(r.name) ? "on" : "" });
      const solo = el("button", { type: "button", textContent: "S", title: "Solo", className: S.soloed.has(r.name) ? "on" : "" });
      mute.dataset.test = `mute-${i}`;
      solo.dataset.test = `solo-${i}`;
      mute.onclick = () => { toggle(S.muted, r.name); mute.className = S.muted.has(r.name) ? "on" : ""; changed(); };
      solo.onclick = () => { toggle(S.soloed, r.name); solo.className = S.soloed.has(r.name) ? "on" : ""; changed(); };
      const lv = S.levels[r.name] || 0;
      const level = el("input", { type: "range", min: -24, max: 12, step: 0.5, value: lv, title: "Level offset (dB)" });
      const levelVal = el("span", { className: "val", textContent: `${lv > 0 ? "+" : ""}${lv.toFixed(1)} dB` });
      level.dataset.test = `level-${i}`;
      level.oninput = () => {
        const v = Number(level.value);
        S.levels[r.name] = v;
        levelVal.textContent = `${v > 0 ? "+" : ""}${v.toFixed(1)} dB`;
        changed();
      };
      let panCell = el("td", { textContent: "—" });
      if (r.pan !== null && r.pan !== undefined) {
        const p = panOf(r.name, r.pan);
        const pan = el("input", { type: "range", className: "pan", min: -1, max: 1, step: 0.05, value: p,
                                   title: "Pan (-1 left, +1 right)" });
        const panVal = el("span", { className: "val", textContent: fmtPan(p) });
        pan.dataset.test = `pan-${i}`;
        pan.oninput = () => {
          S.pans[r.name] = Number(pan.value);
          panVal.textContent = fmtPan(Number(pan.value));
          changed();
        };
        panCell = el("td", {}, [pan, panVal]);
      }
      body.append(el("tr", {}, [
        el("td", { className: "name", textContent: r.name, title: r.name }), el("td", { className: "role", textContent: r.role || "" }),
        el("td", {}, [mute]), el("td", {}, [solo]), el("td", {}, [level, levelVal]), panCell,
      ]));
    });
    send("streamlit:setFrameHeight", { height: document.documentElement.scrollHeight + 4 });
  }

  function fmtPan(p) { return (Math.round(p * 100) / 100 + 0).toFixed(2); } // no "-0.00"

  function toggle(set, name) { if (set.has(name)) set.delete(name); else set.add(name); }

  function changed() {
    if (S.ctx) applyControls();
    report(300);
  }

  function setAB(which) {
    S.ab = which;
    document.getElementById("ab-before").className = which === "before" ? "on" : "";
    document.getElementById("ab-after").className = which === "after" ? "on" : "";
    if (S.ctx) crossfade();
    if (S.ab === "before" && S.args && !S.args.mixes.before) setStatus("A (before): rendering …");
    report(300);
  }

  document.getElementById("ab-before").onclick = () => setAB("before");
  document.getElementById("ab-after").onclick = () => setAB("after");
  document.getElementById("play").onclick = async () => {
    if (!S.ctx) return;
    if (S.ctx.state === "running") await S.ctx.suspend(); else await S.ctx.resume();
    S.started = true;
    document.getElementById("play").textContent = S.ctx.state === "running" ? "Pause" : "Play";
  };

  const fmt = (t) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`;
  setInterval(() => {
    if (!S.ctx) return;
    document.getElementById("pos").textContent = `${fmt(posAt(now()))} / ${fmt(S.dur)}`;
    const level = Math.max(0, Math.min(1, (rms(S.analyser) + 60) / 60));
    document.getElementById("meter").style.width = `${(level * 100).toFixed(0)}%`;
  }, 100);

  // -- the state, for the page's tests -------------------------------------------------------------------------
  window.__player = {
    get playing() { return !!S.ctx && S.ctx.state === "running" && S.started; },
    get position_s() { return S.ctx ? posAt(now()) : 0; },
    get played_s() { return S.ctx && S.t0 !== null ? Math.max(0, now() - S.t0) : 0; }, // not wrapped at the loop
    get duration_s() { return S.dur; },
    get ab() { return S.ab; },
    get muted() { return [...S.muted]; },
    get soloed() { return [...S.soloed]; },
    get levels() { return Object.assign({}, S.levels); },
    get pans() { return Object.assign({}, S.pans); },
    get signals() {
      const out = {};
      for (const m of MIXES) {
        out[m] = {};
        for (const [name, v] of Object.entries(S.voices[m] || {})) out[m][name] = v.main.id;
      }
      return out;
    },
    get rms_db() { // dBFS over the last 4096 samples: the output, each mix, each object of the mix heard
      const tracks = {};
      for (const [name, v] of Object.entries(S.voices[S.ab] || {})) tracks[name] = rms(v.analyser);
      return { master: rms(S.analyser), before: rms(S.buses.before && S.buses.before.analyser),
               after: rms(S.buses.after && S.buses.after.analyser), tracks };
    },
    get wet() { // the processed mix's ducked tracks: their wet part's id, its gain and the dry part's (level * strength)
      const out = {};
      for (const [name, v] of Object.entries(S.voices.after || {})) {
        if (v.wet && v.wet.id) out[name] = { id: v.wet.id, gain: v.wetGain.gain.value, level: v.level.gain.value };
      }
      return out;
    },
    get swaps() { return S.swaps; },
    get heard() { return S.heard; },
    get settling() { return S.settling; }, // the token of the level preview playing (null: a render)
    get settles() { return S.settles; },
    get decoded() { return S.decoded; },
    get renders() { return S.renders; },
    get applied() { return S.applied; },
    get errors() { return [...S.errors]; },
    get rows() { return S.rows.map((r) => r.name); },
    samples(id) { // a decoded signal's samples, one array per channel (null: not held)
      const b = S.buffers.get(id);
      return b ? Array.from({ length: b.numberOfChannels }, (_, c) => Array.from(b.getChannelData(c))) : null;
    },
    get peaks() { // peak of every decoded signal, by id
      const out = {};
      for (const [id, b] of S.buffers) {
        let m = 0;
        for (let c = 0; c < b.numberOfChannels; c++) for (const v of b.getChannelData(c)) m = Math.max(m, Math.abs(v));
        out[id] = m;
      }
      return out;
    },
    mount,
  };

  window.addEventListener("message", (event) => {
    const d = event.data;
    if (!d || d.type !== "streamlit:render") return;
    const theme = d.theme;
    if (theme) {
      const root = document.documentElement.style;
      if (theme.textColor) root.setProperty("--fg", theme.textColor);
      if (theme.primaryColor) root.setProperty("--accent", theme.primaryColor);
      if (theme.secondaryBackgroundColor) root.setProperty("--panel", theme.secondaryBackgroundColor);
    }
    onRender(d.args).catch((err) => { S.errors.push(String(err)); setStatus(String(err)); });
  });
  send("streamlit:componentReady", { apiVersion: 1 });
})();
