// JobLog dashboard: live refresh and actions. Served from the assembly; the pages carry no inline script.
// Everything the ledger holds is inserted with textContent, never as HTML.
(function () {
  'use strict';

  var body = document.body;
  var mode = body.dataset.live || '';
  var interval = Math.max(1, parseInt(body.dataset.interval || '5', 10)) * 1000;
  var toggle = document.getElementById('live-toggle');
  var status = document.getElementById('live-status');
  var timer = null;
  var busy = false;

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function time(iso) {
    if (!iso) { return '\u2014'; }
    return iso.replace('T', ' ').substring(0, 19);
  }

  function duration(s) {
    if (s === null || s === undefined || isNaN(s)) { return '\u2014'; }
    if (s < 0) { s = 0; }
    if (s < 1) { return Math.round(s * 1000) + ' ms'; }
    if (s < 10) { return s.toFixed(2) + ' s'; }
    if (s < 60) { return s.toFixed(1) + ' s'; }
    if (s < 3600) { return Math.floor(s / 60) + ' m ' + pad(Math.floor(s % 60)) + ' s'; }
    return Math.floor(s / 3600) + ' h ' + pad(Math.floor((s % 3600) / 60)) + ' m';
  }

  // Bidi embeddings, overrides and isolates would reorder what is shown: shown as [U+202E], as the server does.
  function visible(text) {
    return String(text).replace(/[\u202A-\u202E\u2066-\u2069]/g, function (c) {
      return '[U+' + c.charCodeAt(0).toString(16).toUpperCase() + ']';
    });
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) { e.className = className; }
    if (text !== undefined && text !== null) { e.textContent = visible(text); }
    return e;
  }

  function link(href, text) {
    var a = el('a', null, text);
    a.setAttribute('href', href);
    return a;
  }

  function stamp(text) {
    if (status) {
      var now = new Date();
      status.textContent = text || (pad(now.getHours()) + ':' + pad(now.getMinutes()) + ':' + pad(now.getSeconds()));
    }
  }

  // The task list: redraw the first page from the JSON API with the same filters.
  function taskRow(t, detail) {
    var tr = el('tr');
    tr.dataset.id = t.id;
    var href = detail + t.id;
    var idCell = el('td', 'mono');
    idCell.appendChild(link(href, t.id.substring(19, 23) + t.id.substring(32, 36)));
    tr.appendChild(idCell);
    var stateCell = el('td');
    stateCell.appendChild(el('span', 'badge st-' + t.state, t.state.toUpperCase()));
    tr.appendChild(stateCell);
    var nameCell = el('td');
    nameCell.appendChild(link(href, t.name));
    tr.appendChild(nameCell);
    tr.appendChild(el('td', 'muted', t.queueName || '\u2014'));
    tr.appendChild(el('td', 'input', t.input || ''));
    tr.appendChild(el('td', 'nowrap', time(t.dispatchedAt)));
    tr.appendChild(el('td', 'num', duration(t.durationSeconds)));
    tr.appendChild(el('td', 'num', t.runs));
    return tr;
  }

  function refreshTasks() {
    var table = document.getElementById('task-table');
    var rows = document.getElementById('task-rows');
    if (!table || !rows) { return Promise.resolve(); }
    return fetch(table.dataset.api, { headers: { 'Accept': 'application/json' }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); })
      .then(function (page) {
        var fresh = [];
        page.items.forEach(function (t) { fresh.push(taskRow(t, table.dataset.detail)); });
        if (fresh.length === 0) {
          var tr = el('tr', 'empty');
          var td = el('td', null, 'No task matches these filters.');
          td.colSpan = 8;
          tr.appendChild(td);
          fresh.push(tr);
        }
        rows.replaceChildren.apply(rows, fresh);
        stamp();
      });
  }

  // Other live pages: fetch the same page and swap <main> (the parsed document is inert: nothing in it runs).
  function refreshRegion() {
    return fetch(window.location.href, { headers: { 'Accept': 'text/html' }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.querySelector('main');
        var main = document.querySelector('main');
        if (!fresh || !main) { return; }
        var open = {};
        main.querySelectorAll('details').forEach(function (d, i) { open[i] = d.open; });
        main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.adoptNode(n); }));
        main.querySelectorAll('details').forEach(function (d, i) { if (i in open) { d.open = open[i]; } });
        if (!doc.body.dataset.live) { stop(); stamp('final'); } else { stamp(); }
      });
  }

  function tick() {
    if (busy || document.hidden || !toggle || !toggle.checked) { return; }
    busy = true;
    var work = mode === 'tasks' ? refreshTasks() : refreshRegion();
    work.catch(function (e) { stamp('offline'); if (window.console) { console.warn('JobLog live refresh: ' + e.message); } })
      .then(function () { busy = false; });
  }

  function stop() {
    if (timer) { clearInterval(timer); timer = null; }
  }

  if (mode && toggle) {
    try { toggle.checked = window.localStorage.getItem('joblog.live') !== 'off'; } catch (e) { /* storage may be off */ }
    toggle.addEventListener('change', function () {
      try { window.localStorage.setItem('joblog.live', toggle.checked ? 'on' : 'off'); } catch (e) { /* ignore */ }
      if (toggle.checked) { tick(); }
      stamp(toggle.checked ? null : 'paused');
    });
    timer = setInterval(tick, interval);
  }

  // Actions (only present when the application enabled them): POST with a header no cross-site form can send.
  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('button[data-action-url]') : null;
    if (!button) { return; }
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    var result = document.getElementById('action-result');
    button.disabled = true;
    fetch(button.dataset.actionUrl, { method: 'POST', headers: { 'X-JobLog-Action': '1', 'Accept': 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (r) {
        if (result) { result.textContent = r.ok ? r.body.message : r.body.error; }
        button.disabled = false;
      })
      .catch(function (e) { if (result) { result.textContent = e.message; } button.disabled = false; });
  });
})();
