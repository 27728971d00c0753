// The tracking timeline (gr.HTML js_on_load): one row per region, its colour where it is
// present, ticks at its keyframes, pins at its captions, and a line at the current frame.
// Clicking a row shows that frame; a caption pin shows its frame and caption; a tag chooses
// the region the next marks edit (also where it is absent: the mark puts it on this frame).
// All text goes in through textContent, never as markup.

const box = element.querySelector('.gar-tl');

function pct(position, frames) { return (100 * position / Math.max(1, frames)) + '%'; }

function span(cls, left, width, colour) {
  const s = document.createElement('span');
  s.className = cls;
  s.style.left = left;
  if (width) s.style.width = width;
  if (colour) s.style.background = colour;
  return s;
}

function render() {
  const v = props.value && typeof props.value === 'object' ? props.value : null;
  box.replaceChildren();
  if (!v || !v.frames) return;
  const head = document.createElement('div');
  head.className = 'gar-tl-head';
  head.textContent = v.label;
  box.append(head);
  const rows = v.regions.length ? v.regions : [null];
  for (const r of rows) {
    const row = document.createElement('div');
    row.className = 'gar-tl-row';
    const chip = document.createElement('span');
    chip.className = 'gar-tl-chip';
    if (r) {
      row.dataset.tag = r.tag;
      chip.textContent = r.tag;
      chip.title = 'Mark ' + r.tag + ' on this frame';
      chip.setAttribute('role', 'button');
      chip.style.background = r.colour;
      chip.style.color = r.ink;
    } else chip.textContent = 'no region';
    const track = document.createElement('div');
    track.className = 'gar-tl-track';
    track.dataset.frames = String(v.frames);
    if (r) {
      for (const [a, b] of r.runs) {
        const run = span('gar-tl-run', pct(a, v.frames), pct(b - a + 1, v.frames), r.colour);
        run.dataset.from = String(a); run.dataset.to = String(b);
        track.append(run);
      }
      for (const k of r.keyframes) track.append(span('gar-tl-key', pct(k + 0.5, v.frames)));
      for (const c of r.captions) {
        const pin = span('gar-tl-pin', pct(c.position + 0.5, v.frames), null, r.colour);
        pin.title = c.label;
        pin.dataset.position = String(c.position);
        pin.dataset.caption = c.label;
        track.append(pin);
      }
    }
    track.append(span('gar-tl-now', pct(v.current + 0.5, v.frames)));
    row.append(chip, track);
    box.append(row);
  }
  const said = document.createElement('div');
  said.className = 'gar-tl-caption';
  said.setAttribute('aria-live', 'polite');
  const here = v.regions.flatMap(r => r.captions.filter(c => c.position === v.current).map(c => r.tag + ' — ' + c.label));
  said.textContent = here.join('   ·   ');
  box.append(said);
}

box.addEventListener('click', (event) => {
  const v = props.value;
  const chip = event.target.closest('.gar-tl-chip');
  if (chip && chip.parentElement.dataset.tag) { trigger('pick', {tag: chip.parentElement.dataset.tag}); return; }
  const pin = event.target.closest('.gar-tl-pin');
  if (pin) { trigger('seek', {position: Number(pin.dataset.position)}); return; }
  const track = event.target.closest('.gar-tl-track');
  if (!track || !v || !v.frames) return;
  const r = track.getBoundingClientRect();
  const position = Math.max(0, Math.min(v.frames - 1, Math.floor((event.clientX - r.left) / r.width * v.frames)));
  trigger('seek', {position});
});

watch('value', render);
render();
