// The GAR App canvas (run by gr.HTML's js_on_load with element, trigger, props, upload, watch).
// The photo is an <img> placed where the view puts it; over it a <canvas> (which lets pointer
// events through to the stage) draws each region's mask (a 1-bit PNG of its box, tinted
// here), outline, tag and marks. Pointer gestures on the stage become marks in image pixels:
//   x_image = (x_css - offset_x) / scale, with scale = CSS pixels per image pixel.
// The backing store has devicePixelRatio pixels per CSS pixel, so it stays sharp on HiDPI.
// All text from the value goes in through textContent or fillText, never as markup.

const root = element.querySelector('.gar-cv');
const stage = root.querySelector('.gar-cv-stage');
const canvas = stage.querySelector('canvas');
const photo = stage.querySelector('.gar-cv-photo');
const ctx = canvas.getContext('2d');
const fileInput = stage.querySelector('input[type=file]');
const statusLine = root.querySelector('.gar-cv-status');
const help = root.querySelector('.gar-cv-help');
const helpButton = root.querySelector('.gar-cv-help-button');
const sizeInput = root.querySelector('.gar-cv-size input');

const state = {
  view: null,          // the last value drawn
  tool: 'include',
  zoom: null,          // {s, ox, oy} once zoomed or panned; null = fit
  imageKey: null,      // the photo the <img> shows
  masks: new Map(),    // key -> canvas tinted in the region's colour
  pending: [],         // marks drawn before the server answered
  corner: null,        // first corner of a two-click box, image pixels
  gesture: null,       // the pointer gesture in progress
  hover: null,         // pointer position in CSS pixels
  base: document.createElement('canvas'),  // image + masks + outlines, redrawn when they change
  baseDirty: true,
  token: 0,
  spaceDown: false,
  css: {w: 0, h: 0},
  dpr: 1,
};
const DRAG_PX = 6;  // a pointer that moves less than this is a click

// ------------------------------------------------------------------ geometry

function fit() {
  const im = state.view && state.view.image;
  if (!im || !state.css.w || !state.css.h) return {s: 1, ox: 0, oy: 0};
  const s = Math.min(state.css.w / im.width, state.css.h / im.height);
  return {s, ox: (state.css.w - im.width * s) / 2, oy: (state.css.h - im.height * s) / 2};
}
function view() { return state.zoom || fit(); }
function toImage(clientX, clientY) {
  const r = canvas.getBoundingClientRect();
  const v = view();
  return [(clientX - r.left - v.ox) / v.s, (clientY - r.top - v.oy) / v.s];
}
function toCss(x, y) { const v = view(); return [v.ox + x * v.s, v.oy + y * v.s]; }
function inside(p) {
  const im = state.view && state.view.image;
  return !!im && p[0] >= 0 && p[1] >= 0 && p[0] < im.width && p[1] < im.height;
}

function layout() {
  const im = state.view && state.view.image;
  const width = stage.clientWidth;
  if (im && width) {  // as tall as the image needs at this width, within the room the page gives
    const room = parseFloat(getComputedStyle(stage).getPropertyValue('--gar-max-h')) || 560;
    stage.style.height = Math.round(Math.max(220, Math.min(room, width * im.height / im.width))) + 'px';
  } else {
    stage.style.height = '';
  }
  const dpr = window.devicePixelRatio || 1;
  const w = stage.clientWidth, h = stage.clientHeight;
  if (w === state.css.w && h === state.css.h && dpr === state.dpr) return;
  state.css = {w, h};
  state.dpr = dpr;
  for (const c of [canvas, state.base]) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  canvas.style.width = w + 'px';
  canvas.style.height = h + 'px';
  state.baseDirty = true;
}

// ------------------------------------------------------------------ decoding

async function bitmap(src) {
  const blob = await (await fetch(src)).blob();
  return await createImageBitmap(blob);
}
async function tinted(src, colour) {
  const bits = await bitmap(src);
  const c = document.createElement('canvas');
  c.width = bits.width; c.height = bits.height;
  const g = c.getContext('2d');
  g.drawImage(bits, 0, 0);
  g.globalCompositeOperation = 'source-in';
  g.fillStyle = colour;
  g.fillRect(0, 0, c.width, c.height);
  return c;
}

async function apply(value) {
  const token = ++state.token;
  if (!value || typeof value !== 'object' || !value.image) {
    state.view = value && typeof value === 'object' ? value : null;
    state.pending = []; state.corner = null;
    finish(token);
    return;
  }
  const missing = [];
  const im = value.image;
  if (state.imageKey !== im.key) {
    if (im.src) {
      photo.src = im.src;
      await photo.decode().catch(() => {});
      state.imageKey = im.key;
    } else missing.push(im.key);
  }
  for (const r of value.regions) {
    for (const part of [r.mask, r.scribble]) {
      if (!part || state.masks.has(part.key)) continue;
      if (part.src) state.masks.set(part.key, await tinted(part.src, r.colour)); else missing.push(part.key);
    }
  }
  if (token !== state.token) return;  // a newer value arrived while decoding
  if (missing.length) { trigger('resync', {missing}); return; }
  const previous = state.view && state.view.image && state.view.image.key;
  if (previous !== im.key) { state.zoom = null; state.corner = null; }
  const keep = new Set([im.key, ...value.regions.flatMap(r => [r.mask, r.scribble].filter(Boolean).map(p => p.key))]);
  for (const k of [...state.masks.keys()]) if (!keep.has(k)) state.masks.delete(k);
  state.view = value;
  state.pending = [];
  if (value.corner) state.corner = value.corner;
  finish(token);
}

function finish(token) {
  const v = state.view;
  stage.classList.toggle('gar-cv-has-image', !!(v && v.image));
  statusLine.textContent = (v && v.status) || 'Open an image: drop or paste one here, choose a file, or pick an example.';
  layout();
  state.baseDirty = true;
  draw();
  stage.dataset.version = String(v && v.version || 0);
  window.__garCanvasPainted = {version: v && v.version || 0, time: performance.now(), token};
}

// ------------------------------------------------------------------ drawing

function regionColour(index) {
  const v = state.view;
  const r = v && v.regions.find(r => r.index === index);
  if (r) return r.colour;
  return v && v.next ? v.next.colour : '#888888';
}
function markColour() {
  const v = state.view;
  return v && v.current != null ? regionColour(v.current) : regionColour(null);
}

function drawBase() {
  const g = state.base.getContext('2d');
  const dpr = state.dpr, v = view(), value = state.view;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.clearRect(0, 0, state.base.width, state.base.height);
  if (!value || !value.image) return;
  g.setTransform(dpr * v.s, 0, 0, dpr * v.s, dpr * v.ox, dpr * v.oy);
  g.imageSmoothingEnabled = false;  // mask pixels stay square when zoomed in
  const ring = document.createElement('canvas');
  ring.width = state.base.width; ring.height = state.base.height;
  const rg = ring.getContext('2d');
  for (const r of value.regions) {
    const m = r.mask && state.masks.get(r.mask.key);
    if (!m) continue;
    const [x0, y0] = r.mask.box;
    g.globalAlpha = 0.42;
    g.drawImage(m, x0, y0);
    g.globalAlpha = 1;
    // outline: the mask drawn around itself, minus the mask, in screen pixels
    const width = r.index === value.current ? 2.5 : 1.5;
    rg.setTransform(1, 0, 0, 1, 0, 0);
    rg.clearRect(0, 0, ring.width, ring.height);
    rg.imageSmoothingEnabled = false;
    for (const [dx, dy] of [[-1, 0], [1, 0], [0, -1], [0, 1], [-0.7, -0.7], [0.7, 0.7], [-0.7, 0.7], [0.7, -0.7]]) {
      rg.setTransform(dpr * v.s, 0, 0, dpr * v.s, dpr * (v.ox + dx * width), dpr * (v.oy + dy * width));
      rg.drawImage(m, x0, y0);
    }
    rg.globalCompositeOperation = 'destination-out';
    rg.setTransform(dpr * v.s, 0, 0, dpr * v.s, dpr * v.ox, dpr * v.oy);
    rg.drawImage(m, x0, y0);
    rg.globalCompositeOperation = 'source-over';
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.drawImage(ring, 0, 0);
    g.setTransform(dpr * v.s, 0, 0, dpr * v.s, dpr * v.ox, dpr * v.oy);
  }
  for (const r of value.regions) {  // brush strokes, over the fills
    const sc = r.scribble && state.masks.get(r.scribble.key);
    if (!sc) continue;
    g.globalAlpha = r.index === value.current ? 0.85 : 0.45;
    g.drawImage(sc, r.scribble.box[0], r.scribble.box[1]);
  }
  g.globalAlpha = 1;
  g.setTransform(1, 0, 0, 1, 0, 0);
  state.baseDirty = false;
}

function luminance(hex) {
  const n = parseInt(hex.slice(1), 16);
  return 0.299 * (n >> 16 & 255) + 0.587 * (n >> 8 & 255) + 0.114 * (n & 255);
}
function contrast(hex) { return luminance(hex) > 140 ? '#000' : '#fff'; }

function pill(g, text, x, y, colour, ink, selected, avoid) {
  g.font = '600 12px system-ui, sans-serif';
  const w = Math.ceil(g.measureText(text).width) + 12, h = 18;
  const place = (cy) => [Math.max(2, Math.min(state.css.w - w - 2, x - w / 2)), Math.max(2, Math.min(state.css.h - h - 2, cy - h / 2))];
  const hits = ([l, t]) => avoid.some(([px, py]) => px > l - 9 && px < l + w + 9 && py > t - 9 && py < t + h + 9);
  let [left, top] = place(y);
  for (const cy of [y - h - 8, y + h + 8, y - 2 * h - 16]) { if (!hits([left, top])) break; [left, top] = place(cy); }
  g.beginPath();
  g.roundRect(left, top, w, h, 9);
  g.fillStyle = colour;
  g.fill();
  g.lineWidth = selected ? 2 : 1;
  g.strokeStyle = ink === '#000' ? 'rgba(0,0,0,0.75)' : 'rgba(255,255,255,0.9)';
  g.stroke();
  g.fillStyle = ink;
  g.textBaseline = 'middle';
  g.textAlign = 'center';
  g.fillText(text, left + w / 2, top + h / 2 + 0.5);
}

function point(g, p, label, colour, faded) {
  const [x, y] = toCss(p[0], p[1]);
  g.globalAlpha = faded ? 0.6 : 1;
  g.beginPath();
  g.arc(x, y, 7, 0, 2 * Math.PI);
  g.fillStyle = colour;
  g.fill();
  g.lineWidth = 2;
  g.strokeStyle = contrast(colour) === '#000' ? '#000' : '#fff';
  g.stroke();
  g.strokeStyle = contrast(colour);
  g.lineWidth = 2;
  g.beginPath();
  g.moveTo(x - 4, y); g.lineTo(x + 4, y);
  if (label) { g.moveTo(x, y - 4); g.lineTo(x, y + 4); }
  g.stroke();
  g.globalAlpha = 1;
}

function rect(g, box, colour, dashed) {
  const [ax, ay] = toCss(box[0], box[1]);
  const [bx, by] = toCss(box[2], box[3]);
  g.setLineDash([]);
  g.lineWidth = 4;
  g.strokeStyle = 'rgba(0,0,0,0.55)';
  g.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
  g.lineWidth = 2;
  g.strokeStyle = colour;
  if (dashed) g.setLineDash([6, 4]);
  g.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
  g.setLineDash([]);
}

function polyline(g, pts, radiusCss, colour, erase) {
  if (!pts.length) return;
  g.lineCap = 'round'; g.lineJoin = 'round';
  g.lineWidth = 2 * radiusCss;
  g.strokeStyle = erase ? 'rgba(255,255,255,0.7)' : colour;
  g.globalAlpha = 0.8;
  g.beginPath();
  const [x0, y0] = toCss(pts[0][0], pts[0][1]);
  g.moveTo(x0, y0);
  if (pts.length === 1) g.lineTo(x0 + 0.01, y0);
  for (const p of pts.slice(1)) { const [x, y] = toCss(p[0], p[1]); g.lineTo(x, y); }
  g.stroke();
  g.globalAlpha = 1;
}

function draw() {
  layout();
  const v = view();
  stage.dataset.view = JSON.stringify({s: v.s, ox: v.ox, oy: v.oy});  // read by tests and tools
  const im = state.view && state.view.image;
  if (im) {  // the photo where the view puts it, in CSS pixels
    Object.assign(photo.style, {left: v.ox + 'px', top: v.oy + 'px', width: im.width * v.s + 'px',
                                height: im.height * v.s + 'px'});
  }
  if (state.baseDirty) drawBase();
  const g = ctx;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.drawImage(state.base, 0, 0);
  const value = state.view;
  if (!value || !value.image) return;
  g.setTransform(state.dpr, 0, 0, state.dpr, 0, 0);
  const dots = value.regions.flatMap(r => r.points.map(p => toCss(p[0], p[1])));
  for (const r of value.regions) {  // tags, moved off the points so both stay readable
    const [x, y] = toCss(r.label[0], r.label[1]);
    pill(g, r.tag, x, y, r.colour, r.ink, r.index === value.current, dots);
  }
  for (const r of value.regions) {  // marks that made each region
    const faded = r.index !== value.current;
    if (r.box) rect(g, r.box, r.colour, faded);
    for (const p of r.points) point(g, p, p[2], r.colour, faded);
  }
  const colour = markColour();
  for (const m of state.pending) {
    if (m.kind === 'point') point(g, m.p, m.positive, colour, false);
    if (m.kind === 'box') rect(g, m.box, colour, false);
    if (m.kind === 'stroke') polyline(g, m.points, m.radius * view().s, colour, m.erase);
  }
  const gesture = state.gesture;
  if (gesture && gesture.kind === 'drag' && gesture.dragging) rect(g, [...gesture.start, ...gesture.end], colour, true);
  if (gesture && gesture.kind === 'stroke') polyline(g, gesture.points, gesture.radius * view().s, colour, gesture.erase);
  if (state.corner) {
    const [x, y] = toCss(state.corner[0], state.corner[1]);
    g.strokeStyle = colour; g.lineWidth = 2;
    g.beginPath(); g.moveTo(x - 8, y); g.lineTo(x + 8, y); g.moveTo(x, y - 8); g.lineTo(x, y + 8); g.stroke();
    if (state.hover) rect(g, [...state.corner, ...toImage(state.hover[0], state.hover[1])], colour, true);
  }
  if (state.hover && (state.tool === 'brush' || state.tool === 'eraser') && !state.gesture) {
    const r = stage.getBoundingClientRect();
    g.beginPath();
    g.arc(state.hover[0] - r.left, state.hover[1] - r.top, brushCss(), 0, 2 * Math.PI);
    g.lineWidth = 1; g.strokeStyle = '#fff'; g.stroke();
    g.setLineDash([3, 3]); g.strokeStyle = '#000'; g.stroke(); g.setLineDash([]);
  }
}

let frame = 0;
function redraw() { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); }

// ------------------------------------------------------------------ gestures

function brushCss() { return Number(sizeInput.value) || 10; }

function setTool(tool) {
  state.tool = tool;
  state.corner = null;
  stage.dataset.tool = tool;
  for (const b of root.querySelectorAll('.gar-cv-tool')) b.setAttribute('aria-pressed', String(b.dataset.tool === tool));
  redraw();
}

function send(kind, data, pendingMark) {
  if (pendingMark) state.pending.push(pendingMark);
  redraw();
  trigger(kind, data);
}

stage.addEventListener('pointerdown', (e) => {
  if (e.target.closest('.gar-cv-open, .gar-cv-choose')) return;  // the file chooser's own controls
  if (!state.view || !state.view.image) { if (e.button === 0) fileInput.click(); return; }
  const panning = e.button === 1 || e.button === 2 || state.spaceDown;
  if (!panning && e.button !== 0) return;
  e.preventDefault();
  stage.setPointerCapture(e.pointerId);
  const p = toImage(e.clientX, e.clientY);
  if (panning) {
    const v = view();
    state.gesture = {kind: 'pan', x: e.clientX, y: e.clientY, from: {...v}};
  } else if (state.tool === 'brush' || state.tool === 'eraser') {
    state.gesture = {kind: 'stroke', points: [p], radius: brushCss() / view().s, erase: state.tool === 'eraser'};
  } else {
    state.gesture = {kind: 'drag', x: e.clientX, y: e.clientY, start: p, end: p, dragging: false};
  }
  redraw();
});

stage.addEventListener('pointermove', (e) => {
  state.hover = [e.clientX, e.clientY];
  const gesture = state.gesture;
  if (gesture && gesture.kind === 'pan') {
    state.zoom = {s: gesture.from.s, ox: gesture.from.ox + e.clientX - gesture.x, oy: gesture.from.oy + e.clientY - gesture.y};
    state.baseDirty = true;
  } else if (gesture && gesture.kind === 'stroke') {
    for (const ev of (e.getCoalescedEvents ? e.getCoalescedEvents() : [e])) gesture.points.push(toImage(ev.clientX, ev.clientY));
  } else if (gesture && gesture.kind === 'drag') {
    gesture.end = toImage(e.clientX, e.clientY);
    gesture.dragging = gesture.dragging || Math.hypot(e.clientX - gesture.x, e.clientY - gesture.y) >= DRAG_PX;
  }
  redraw();
});

stage.addEventListener('pointerleave', () => { state.hover = null; redraw(); });
stage.addEventListener('contextmenu', (e) => e.preventDefault());
photo.addEventListener('dragstart', (e) => e.preventDefault());

stage.addEventListener('pointerup', (e) => {
  const gesture = state.gesture;
  state.gesture = null;
  if (!gesture) return;
  if (gesture.kind === 'stroke') {
    const points = gesture.points.map(p => [round(p[0]), round(p[1])]);
    const radius = round(gesture.radius);
    send('mark_stroke', {points, radius, erase: gesture.erase}, {kind: 'stroke', points, radius, erase: gesture.erase});
    return;
  }
  if (gesture.kind !== 'drag') { redraw(); return; }
  gesture.end = toImage(e.clientX, e.clientY);
  if (gesture.dragging) {
    const box = [...gesture.start, ...gesture.end].map(round);
    state.corner = null;
    send('mark_box', {box}, {kind: 'box', box});
    return;
  }
  const p = gesture.start;
  if (!inside(p)) { redraw(); return; }  // a click beside the image is no mark
  if (state.tool === 'box') {
    if (!state.corner) { state.corner = p; redraw(); return; }
    const box = [...state.corner, ...p].map(round);
    state.corner = null;
    send('mark_box', {box}, {kind: 'box', box});
    return;
  }
  const positive = state.tool !== 'exclude';
  send('mark_point', {x: round(p[0]), y: round(p[1]), positive}, {kind: 'point', p, positive});
});

function round(v) { return Math.round(v * 100) / 100; }

// zoom: Ctrl + wheel (and trackpad pinch) zooms at the pointer; a plain wheel pans once zoomed in
stage.addEventListener('wheel', (e) => {
  if (!state.view || !state.view.image) return;
  if (e.ctrlKey || e.metaKey) {
    e.preventDefault();
    zoomAt(Math.exp(-e.deltaY * 0.002), e.clientX, e.clientY);
  } else if (state.zoom) {
    e.preventDefault();
    state.zoom = {...state.zoom, ox: state.zoom.ox - e.deltaX, oy: state.zoom.oy - e.deltaY};
    state.baseDirty = true;
    redraw();
  }
}, {passive: false});

function zoomAt(factor, clientX, clientY) {
  const v = view(), f = fit();
  const r = canvas.getBoundingClientRect();
  const cx = clientX == null ? state.css.w / 2 : clientX - r.left;
  const cy = clientY == null ? state.css.h / 2 : clientY - r.top;
  const s = Math.max(f.s * 0.5, Math.min(f.s * 40, v.s * factor));
  state.zoom = {s, ox: cx - (cx - v.ox) * s / v.s, oy: cy - (cy - v.oy) * s / v.s};
  state.baseDirty = true;
  redraw();
}

for (const b of root.querySelectorAll('.gar-cv-tool')) b.addEventListener('click', () => setTool(b.dataset.tool));
for (const b of root.querySelectorAll('.gar-cv-zoom')) {
  b.addEventListener('click', () => {
    if (b.dataset.zoom === 'fit') { state.zoom = null; state.baseDirty = true; redraw(); }
    else zoomAt(b.dataset.zoom === 'in' ? 1.25 : 0.8);
  });
}
sizeInput.addEventListener('input', redraw);
helpButton.addEventListener('click', () => toggleHelp());
function toggleHelp(show) {
  const open = show === undefined ? help.hidden : show;
  help.hidden = !open;
  helpButton.setAttribute('aria-expanded', String(open));
}

// ------------------------------------------------------------------ opening images

async function open(file) {
  if (!file) return;
  statusLine.textContent = 'Uploading ' + file.name + '…';
  try {
    const uploaded = await upload(file);
    trigger('open_image', {path: uploaded.path, name: file.name});
  } catch (error) {
    statusLine.textContent = 'The upload failed: ' + (error && error.message ? error.message : error);
  }
}
fileInput.addEventListener('change', () => { open(fileInput.files[0]); fileInput.value = ''; });
stage.querySelector('.gar-cv-choose').addEventListener('click', () => fileInput.click());
stage.addEventListener('dragover', (e) => { e.preventDefault(); stage.classList.add('gar-cv-drop'); });
stage.addEventListener('dragleave', () => stage.classList.remove('gar-cv-drop'));
stage.addEventListener('drop', (e) => {
  e.preventDefault();
  stage.classList.remove('gar-cv-drop');
  const file = [...(e.dataTransfer ? e.dataTransfer.files : [])].find(f => f.type.startsWith('image/'));
  open(file);
});

// ------------------------------------------------------------------ keyboard

function click(id) { const b = document.getElementById(id); if (b && !b.disabled) b.click(); }
function typing(target) {
  return target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}
const KEYS = {i: 'include', e: 'exclude', b: 'box', s: 'brush', x: 'eraser'};
function onKey(e) {
  if (!element.isConnected) return;
  if (e.type === 'keyup') { if (e.code === 'Space') state.spaceDown = false; return; }
  const mod = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (mod && key === 'z' && !typing(e.target)) { e.preventDefault(); click(e.shiftKey ? 'gar-redo' : 'gar-undo'); return; }
  if (mod && key === 'y' && !typing(e.target)) { e.preventDefault(); click('gar-redo'); return; }
  if (mod || e.altKey || typing(e.target)) return;
  if (KEYS[key]) setTool(KEYS[key]);
  else if (key === 'n') click('gar-new-region');
  else if (key === 'delete' || key === 'backspace') click('gar-delete-region');
  else if (key === 'd') click('gar-describe');
  else if (key === '?') toggleHelp();
  else if (key === '+' || key === '=') zoomAt(1.25);
  else if (key === '-') zoomAt(0.8);
  else if (key === '0') { state.zoom = null; state.baseDirty = true; redraw(); }
  else if (key === 'escape') { state.corner = null; state.gesture = null; toggleHelp(false); redraw(); }
  else if (e.code === 'Space' && state.view && state.view.image) { state.spaceDown = true; e.preventDefault(); }
  else return;
}
if (window.__garCanvasKeys) {  // the component was mounted again: keep one listener
  document.removeEventListener('keydown', window.__garCanvasKeys);
  document.removeEventListener('keyup', window.__garCanvasKeys);
}
function onPaste(e) {
  if (!element.isConnected || typing(e.target)) return;
  const file = [...(e.clipboardData ? e.clipboardData.files : [])].find(f => f.type.startsWith('image/'));
  if (file) { e.preventDefault(); open(file); }
}
if (window.__garCanvasPaste) document.removeEventListener('paste', window.__garCanvasPaste);
window.__garCanvasKeys = onKey;
window.__garCanvasPaste = onPaste;
document.addEventListener('keydown', onKey);
document.addEventListener('keyup', onKey);
document.addEventListener('paste', onPaste);

new ResizeObserver(() => { state.baseDirty = true; redraw(); }).observe(stage);
watch('value', () => apply(props.value));
apply(props.value);
