/* veil.js - the Veil tracking script (docs/TRACKER.md).
 *
 *   <script defer data-domain="example.com" src="https://stats.example.com/veil.js"></script>
 *
 * Sends page views (on load, history.pushState/replaceState, popstate; with
 * data-hash the fragment counts), outbound-link and file-download clicks,
 * custom events (window.veil(), data-veil-event), form starts and submits,
 * and per page view the maximum scroll depth and the engaged time, as
 * text/plain JSON to <script origin>/api/event (or data-api) through
 * navigator.sendBeacon, or fetch keepalive when sendBeacon refuses.
 *
 * Must never: set or read a cookie, write any storage, read any storage but
 * the opt-out flag localStorage.veil_ignore, send a form field's value or a
 * link's query string or fragment, or send anything under DNT or GPC (unless
 * data-ignore-dnt), when opted out, or on localhost and file: (unless
 * data-include-localhost). tracker/build.mjs minifies it and fails the build
 * above 1536 bytes gzipped: every feature here is paid for in bytes. */
((win, doc) => {
  var nav = navigator;
  var loc = location;
  var hist = history;
  var script = doc.currentScript;
  if (!script) return; /* only a classic <script> knows its own tag */

  var attr = (name) => script.getAttribute('data-' + name);
  var endpoint = attr('api') || new URL(script.src).origin + '/api/event';
  var hashMode = attr('hash') != null;
  /* data-download-extensions="pdf,zip,..." replaces the default list. */
  var downloads = RegExp(
    '\\.(' +
      (
        attr('download-extensions') ||
        'pdf|docx?|xlsx?|pptx?|csv|txt|zip|rar|7z|gz|dmg|exe|msi|apk|iso|mp3|mp4|mov'
      ).replace(/\W+/g, '|') +
      ')$',
    'i'
  );
  /* Fixed for the life of the page; the localStorage flag is read per event. */
  var blocked =
    (attr('include-localhost') == null &&
      /^(localhost|127(\.\d+){3}|\[::1\]|)$/.test(loc.hostname)) /* "" is file: */ ||
    (attr('ignore-dnt') == null && (nav.doNotTrack == 1 || nav.globalPrivacyControl));

  /* The current page view: its path key (pathname, + fragment in hash mode)
   * and URL, engaged time not yet sent, start of the running engaged stretch
   * (0 = not engaged), deepest scroll seen and last sent, started forms. */
  var pageKey, pageUrl, engagedMs, engagedSince, maxScroll, sentScroll, startedForms;

  var on = (target, type, handler, capture) => target.addEventListener(type, handler, capture);
  var now = () => performance.now();

  /* Send event `name` with custom props `props` (members whose value is an
   * object are left out: the collector takes scalars only) and the fields
   * in `ev` (u, sd, e).
   * Nothing leaves when blocked, opted out, or when storage access throws
   * (an opt-out cannot be ruled out). `callback` runs in every case. */
  var send = (name, props, ev, callback) => {
    try {
      if (!blocked && name && localStorage.veil_ignore != 'true') {
        ev = ev || {};
        ev.n = name;
        ev.u = (ev.u || loc.href).slice(0, 2000);
        ev.d = attr('domain') || loc.hostname;
        ev.r = doc.referrer.slice(0, 2000) || null;
        ev.w = innerWidth;
        if (hashMode) ev.h = 1;
        if (props) {
          ev.p = {};
          for (var key in props) if (typeof props[key] != 'object') ev.p[key] = props[key];
        }
        ev = JSON.stringify(ev);
        (nav.sendBeacon && nav.sendBeacon(endpoint, ev)) ||
          fetch(endpoint, { method: 'POST', body: ev, keepalive: true }).catch(now);
      }
    } catch (e) {}
    callback && callback();
  };

  /* ---- engagement: time visible and focused, maximum scroll depth ---- */

  var pause = () => {
    if (engagedSince) {
      engagedMs += now() - engagedSince;
      engagedSince = 0;
    }
  };

  var resume = () => {
    if (!engagedSince && !doc.hidden && doc.hasFocus()) engagedSince = now();
  };

  var measureScroll = () => {
    maxScroll = Math.max(
      maxScroll,
      Math.min(100, Math.round(((scrollY + innerHeight) * 100) / doc.documentElement.scrollHeight))
    );
  };

  /* One "engagement" event for the current page view: e = engaged ms since
   * the last one (when any), sd = max scroll depth (when deeper than sent). */
  var flush = (ev) => {
    pause();
    ev = { u: pageUrl };
    if (engagedMs >= 1) ev.e = Math.min(engagedMs | 0, 864e5);
    if (maxScroll > sentScroll) ev.sd = sentScroll = maxScroll;
    engagedMs = 0;
    if (ev.e || ev.sd) send('engagement', 0, ev);
  };

  var hide = () => {
    measureScroll();
    flush();
  };

  /* ---- page views ---- */

  /* A new page view when the path key changed (or `force` is 1): the
   * previous page view's engagement goes first, under its own URL. */
  var pageview = (force) => {
    var key = loc.pathname + (hashMode ? loc.hash : '');
    if (force == 1 || key != pageKey) {
      if (pageUrl) flush();
      pageKey = key;
      pageUrl = loc.href;
      engagedMs = engagedSince = maxScroll = sentScroll = 0;
      startedForms = new WeakSet();
      send('pageview');
      resume();
    }
  };

  ['pushState', 'replaceState'].forEach((method) => {
    var original = hist[method];
    hist[method] = function () {
      measureScroll(); /* the page being left is still in the DOM */
      original.apply(this, arguments);
      pageview();
    };
  });

  on(win, 'popstate', () => pageview()); /* also fired by fragment navigation */
  on(win, 'pageshow', (e) => e.persisted && pageview(1)); /* back/forward cache */
  on(win, 'pagehide', hide);
  on(doc, 'visibilitychange', () => (doc.hidden ? hide() : resume()));
  on(win, 'blur', pause);
  on(win, 'focus', resume);
  on(win, 'scroll', measureScroll);

  /* ---- clicks: tagged elements, downloads, outbound links ---- */

  var onClick = (e) => {
    var target = e.target;
    if (!target.closest) return; /* a click dispatched at the document itself */
    var tagged = target.closest('[data-veil-event]');
    var link = target.closest('a[href]');
    var props = {};
    if (e.button < 2) {
      if (tagged) {
        for (var a of tagged.attributes) {
          var m = /^data-veil-event-(.+)/.exec(a.name);
          if (m) props[m[1]] = a.value;
        }
        send(tagged.getAttribute('data-veil-event'), props);
      } else if (link && /^http/.test(link.protocol)) {
        props.url = link.origin + link.pathname; /* never the query or fragment */
        if (link.hasAttribute('download') || downloads.test(link.pathname))
          send('File Download', props);
        else if (link.host != loc.host) send('Outbound Link: Click', props);
      }
    }
  };

  on(doc, 'click', onClick, 1);
  on(doc, 'auxclick', onClick, 1); /* middle button: open in a new tab */

  /* ---- forms: first input and submit, by name or id, never values ---- */

  /* getAttribute: form.name and form.id can be shadowed by fields. */
  var formEvent = (name, form) =>
    send('Form: ' + name, {
      form: form.getAttribute('name') || form.getAttribute('id') || '(unnamed)',
    });

  on(
    doc,
    'input',
    (e) => {
      var form = e.target.form;
      if (form && !startedForms.has(form)) {
        startedForms.add(form);
        formEvent('Start', form);
      }
    },
    1
  );
  on(doc, 'submit', (e) => formEvent('Submit', e.target), 1);

  /* ---- custom events: window.veil(name, {props, callback, interactive}) ---- */

  var veil = (name, options) => {
    options = options || {};
    send(name, options.props, options.interactive === false && { i: false }, options.callback);
  };

  /* The page view first, then the calls queued by the snippet. */
  var start = (queue) => {
    queue = (win.veil || {}).q || [];
    pageview(1);
    win.veil = veil;
    queue.forEach((args) => veil(...args));
  };

  /* A prerendered page counts once the visitor actually sees it. */
  doc.prerendering ? on(doc, 'prerenderingchange', start) : start();
})(window, document);
