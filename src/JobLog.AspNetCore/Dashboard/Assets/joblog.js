// JobLog dashboard: live refresh and actions. Served from the assembly; the pages carry no inline script.
// The script draws nothing from ledger data: the live refresh swaps in fragments the server rendered (and encoded) with
// the same code as the page, and the script's own messages are set with textContent.
(function () {
  'use strict';

  var body = document.body;
  var interval = Math.max(1, parseInt(body.dataset.interval || '5', 10)) * 1000;
  // The part of the page that refreshes itself (a list's table, or the whole <main>) is marked data-live.
  var live = document.querySelector('[data-fragment][data-live]');
  var fragment = live ? live.dataset.fragment : '';
  var toggle = document.getElementById('live-toggle');
  var status = document.getElementById('live-status');
  var timer = null;
  var busy = false;

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function stamp(text) {
    if (status) {
      var now = new Date();
      status.textContent = text || (pad(now.getHours()) + ':' + pad(now.getMinutes()) + ':' + pad(now.getSeconds()));
    }
  }

  // Asks this page's URL for the fragment alone and swaps it in. The parsed document is inert (nothing in it runs);
  // the fragment is the element the full page has, so a page answered whole works the same.
  function refresh() {
    return fetch(window.location.href, {
      headers: { 'Accept': 'text/html', 'X-JobLog-Fragment': fragment }, cache: 'no-store', credentials: 'same-origin'
    })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (html) {
        var selector = '[data-fragment="' + fragment + '"]';
        var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector(selector);
        var current = document.querySelector(selector);
        if (!fresh || !current) { throw new Error('the page has no ' + fragment + ' fragment'); }
        var open = [];
        current.querySelectorAll('details').forEach(function (d, i) { open[i] = d.open; });
        fresh = document.adoptNode(fresh);
        fresh.querySelectorAll('details').forEach(function (d, i) { if (i in open) { d.open = open[i]; } });
        current.replaceWith(fresh);
        if (!fresh.hasAttribute('data-live')) { stop(); stamp('final'); } else { stamp(); }
      });
  }

  function tick() {
    if (busy || document.hidden || !toggle || !toggle.checked) { return; }
    busy = true;
    refresh().catch(function (e) { stamp('offline'); if (window.console) { console.warn('JobLog live refresh: ' + e.message); } })
      .then(function () { busy = false; });
  }

  function stop() {
    if (timer) { clearInterval(timer); timer = null; }
  }

  if (fragment && toggle) {
    try { toggle.checked = window.localStorage.getItem('joblog.live') !== 'off'; } catch (e) { /* storage may be off */ }
    toggle.addEventListener('change', function () {
      try { window.localStorage.setItem('joblog.live', toggle.checked ? 'on' : 'off'); } catch (e) { /* ignore */ }
      if (toggle.checked) { tick(); }
      stamp(toggle.checked ? null : 'paused');
    });
    timer = setInterval(tick, interval);
  }

  // A retry's progress: polls its JSON twin until it is complete; the status words match FailurePages.Status.
  var progress = document.getElementById('retry-progress');
  if (progress && progress.dataset.progressUrl && !progress.dataset.done) {
    var progressStatus = document.getElementById('retry-status');
    var poll = setInterval(function () {
      fetch(progress.dataset.progressUrl, { headers: { 'Accept': 'application/json' }, cache: 'no-store', credentials: 'same-origin' })
        .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); })
        .then(function (p) {
          progress.max = Math.max(p.total, 1);
          progress.value = p.sent + p.skipped + p.failed;
          var text = p.sent + ' of ' + p.total + ' sent, ' + p.skipped + ' skipped, ' + p.failed + ' failed';
          if (p.completed) { text += ' \u00b7 done'; progress.dataset.done = 'true'; clearInterval(poll); }
          if (progressStatus) { progressStatus.textContent = text; }
        })
        .catch(function (e) { if (progressStatus) { progressStatus.textContent = 'offline (' + e.message + ')'; } });
    }, 1000);
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
