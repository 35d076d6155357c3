// XenSharp Panel client script: confirmations, the xterm.js console, and the stats graphs. No inline scripts (CSP).
'use strict';

document.addEventListener('submit', (e) => {
  const msg = e.target.getAttribute && e.target.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) e.preventDefault();
});

function startConsole(el) {
  if (typeof Terminal === 'undefined') { el.textContent = 'console script failed to load'; return; }
  const term = new Terminal({ convertEol: true, cursorBlink: true, rows: 20, fontSize: 14, scrollback: 2000 });
  term.open(el);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let ws;
  const connect = () => {
    ws = new WebSocket(proto + '//' + location.host + el.dataset.ws);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => el.setAttribute('data-state', 'open');
    ws.onmessage = (m) => {
      const bytes = m.data instanceof ArrayBuffer ? new Uint8Array(m.data) : new TextEncoder().encode(m.data);
      term.write(bytes);
      el.setAttribute('data-bytes', String(Number(el.getAttribute('data-bytes') || 0) + bytes.length));
    };
    ws.onclose = () => {
      el.setAttribute('data-state', 'closed');
      term.write('\r\n\x1b[33m[console disconnected — reconnecting]\x1b[0m\r\n');
      setTimeout(connect, 3000);
    };
  };
  const enc = new TextEncoder();
  term.onData((d) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
  connect();
  window.panelConsole = term; // lets tests read the screen buffer
}

const SVG = 'http://www.w3.org/2000/svg';
function draw(svg, values, max) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 600, H = 150;
  for (let i = 1; i < 4; i++) {
    const l = document.createElementNS(SVG, 'line');
    l.setAttribute('x1', '0'); l.setAttribute('x2', String(W)); l.setAttribute('y1', String(H * i / 4)); l.setAttribute('y2', String(H * i / 4));
    l.setAttribute('class', 'grid'); svg.appendChild(l);
  }
  svg.setAttribute('data-points', String(values.length));
  if (values.length === 0) return;
  const top = Math.max(max, ...values) || 1;
  const step = values.length > 1 ? W / (values.length - 1) : 0;
  const pts = values.map((v, i) => (i * step).toFixed(1) + ',' + (H - (v / top) * (H - 6) - 3).toFixed(1)).join(' ');
  const p = document.createElementNS(SVG, 'polyline');
  p.setAttribute('points', values.length === 1 ? pts + ' ' + W + ',' + pts.split(',')[1] : pts);
  svg.appendChild(p);
}

function startGraphs(el) {
  const cpu = document.getElementById('cpu-graph'), mem = document.getElementById('mem-graph');
  const tick = async () => {
    try {
      const r = await fetch(el.dataset.stats + '?points=120', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!r.ok) return;
      const s = await r.json();
      const c = s.points.map((p) => p.cpuPercent), m = s.points.map((p) => p.memoryMiB);
      draw(cpu, c, 100); draw(mem, m, 16);
      document.getElementById('cpu-now').textContent = c.length ? c[c.length - 1].toFixed(1) + '%' : '';
      document.getElementById('mem-now').textContent = m.length ? m[m.length - 1] + ' MiB' : '';
      // Disk and network: KiB/s between samples, both directions added; points without host counters count as 0.
      const kib = (a, b) => ((a || 0) + (b || 0)) / 1024;
      const n = s.points.map((p) => kib(p.netRxBytesPerSecond, p.netTxBytesPerSecond));
      const d = s.points.map((p) => kib(p.diskReadBytesPerSecond, p.diskWriteBytesPerSecond));
      const net = document.getElementById('net-graph'), disk = document.getElementById('disk-graph');
      if (net) { draw(net, n, 1); document.getElementById('net-now').textContent = s.ioReported && n.length ? n[n.length - 1].toFixed(1) + ' KiB/s' : ''; }
      if (disk) { draw(disk, d, 1); document.getElementById('disk-now').textContent = s.ioReported && d.length ? d[d.length - 1].toFixed(1) + ' KiB/s' : ''; }
      el.setAttribute('data-interval', String(s.intervalSeconds));
    } catch (e) { /* the next tick retries */ }
  };
  tick();
  setInterval(tick, 3000);
}

document.addEventListener('DOMContentLoaded', () => {
  const c = document.getElementById('console'); if (c) startConsole(c);
  const g = document.getElementById('graphs'); if (g) startGraphs(g);
});
