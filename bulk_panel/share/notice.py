"""A readable message on the shared page where the CDNs it loads from cannot be reached.

>>> add_offline_notice(Path("site/index.html"), Path("site/index.js"))   # the hosts the page loads from
"""
from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["OFFLINE_NOTICE", "ShareError", "add_offline_notice", "page_hosts"]


class ShareError(RuntimeError):
    """The page could not be built; the message says why in one line."""


# Put first into the page's <head>: where the public CDNs cannot be reached (a closed network, a
# blocking proxy), the page shows this message instead of its unstyled remains (the template's
# icons at full size). It watches what the page loads from other hosts: a script or style sheet
# that fails (web fonts excepted: the page works without them), the Pyodide worker failing to
# start, and the worker's report that packages could not be installed.
OFFLINE_NOTICE = r"""<!-- bulk_panel: a readable message when the CDNs this page loads from cannot be reached -->
<style>
#bulk-panel-offline { position: fixed; inset: 0; z-index: 2147483647; overflow: auto; display: flex;
  align-items: center; justify-content: center; background: #fff; color: #222;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
#bulk-panel-offline > div { max-width: 40em; padding: 2em; }
#bulk-panel-offline h1 { font-size: 1.5em; margin: 0 0 0.6em; }
#bulk-panel-offline code { background: #f0f0f0; padding: 0 0.25em; border-radius: 3px; white-space: nowrap; }
#bulk-panel-offline .details { color: #666; font-size: 0.85em; overflow-wrap: anywhere; }
html.bulk-panel-offline body > :not(#bulk-panel-offline) { display: none !important; }
html.bulk-panel-offline body::before, html.bulk-panel-offline body::after { display: none !important; }
</style>
<script>
(function () {
  var CDN_HOSTS = __HOSTS__;
  var OPTIONAL = /(^|\.)(fonts\.googleapis\.com|fonts\.gstatic\.com)$/;
  var unreachable = [], details = [], box = null;
  function hostOf(url) {
    try { return new URL(url, location.href).host; } catch (e) { return ""; }
  }
  function paragraph(parent, text, className) {
    var p = document.createElement("p");
    p.textContent = text;
    if (className) p.className = className;
    parent.appendChild(p);
    return p;
  }
  function render() {
    if (!document.body) return;
    document.documentElement.classList.add("bulk-panel-offline");
    document.body.classList.remove("pn-loading");
    if (box) box.remove();
    box = document.createElement("div");
    box.id = "bulk-panel-offline";
    box.setAttribute("role", "alert");
    var inner = document.createElement("div");
    var title = document.createElement("h1");
    title.textContent = "This page could not load what it runs on";
    inner.appendChild(title);
    paragraph(inner, "It runs in your browser with Pyodide (Python in WebAssembly), which it loads, with " +
      "its Python packages and scripts, from public servers when it is opened: " + CDN_HOSTS.join(", ") +
      " and PyPI. From here, " + (unreachable.length ? unreachable.join(", ") : "some of them") +
      " could not be reached: this network may have no internet access, or a proxy or filter blocks them.");
    var hint = paragraph(inner, "Open the page where the internet is reachable, or open the results with ");
    var code = document.createElement("code");
    code.textContent = "bulk-panel serve RESULTS";
    hint.appendChild(code);
    hint.appendChild(document.createTextNode(", which needs no internet."));
    if (details.length) paragraph(inner, "Details: " + details.join("; "), "details");
    box.appendChild(inner);
    document.body.appendChild(box);
  }
  function fail(host, detail) {
    if (host && unreachable.indexOf(host) < 0) unreachable.push(host);
    if (detail && details.indexOf(detail) < 0 && details.length < 3) details.push(detail);
    if (document.body) render();
    else document.addEventListener("DOMContentLoaded", render, { once: true });
  }
  window.addEventListener("error", function (event) {
    var el = event.target;
    if (!el || el === window || !el.tagName) return;
    var url = el.tagName === "SCRIPT" ? el.src : el.tagName === "LINK" && /stylesheet/i.test(el.rel) ? el.href : "";
    var host = url ? hostOf(url) : "";
    if (!host || host === location.host || OPTIONAL.test(host)) return;
    fail(host, "could not load " + url);
  }, true);
  var NativeWorker = window.Worker;
  if (!NativeWorker) return;
  window.Worker = function (url, options) {
    var worker = new NativeWorker(url, options);
    worker.addEventListener("error", function (event) {
      var text = String(event.message || "the Pyodide worker stopped");
      var match = /https?:\/\/[^\/'"\s]+/.exec(text);
      fail(match ? hostOf(match[0]) : "", text);
    });
    worker.addEventListener("message", function (event) {
      var msg = event.data || {};
      if (msg.type === "status" && /^Error while installing packages/.test(String(msg.msg))) {
        fail("", "Python packages could not be installed (micropip)");
      }
    });
    return worker;
  };
  window.Worker.prototype = NativeWorker.prototype;
})();
</script>
"""


def page_hosts(*texts: str) -> list[str]:
    """The other hosts that page files (HTML, the worker's script) load from, sorted.

    >>> page_hosts('<script src="https://cdn.bokeh.org/bokeh.js">')   # ['cdn.bokeh.org']
    """
    return sorted({host for text in texts for host in re.findall(r"https://([A-Za-z0-9.-]+)/", text)})


def add_offline_notice(html: Path, worker: Path) -> list[str]:
    """Put :data:`OFFLINE_NOTICE` first into the ``<head>`` of the page ``html`` (whose Pyodide
    worker is ``worker``); returns the hosts the page loads from.

    >>> add_offline_notice(Path("site/index.html"), Path("site/index.js"))   # ['cdn.bokeh.org', ...]
    """
    text = html.read_text(encoding="utf-8")
    hosts = page_hosts(text, worker.read_text(encoding="utf-8"))
    head = re.search(r"<head\b[^>]*>", text, flags=re.IGNORECASE)
    if head is None:
        raise ShareError(f"{html}: no <head> to put the offline notice into")
    shown = [h for h in hosts if not h.startswith("fonts.")] or hosts
    notice = OFFLINE_NOTICE.replace("__HOSTS__", json.dumps(shown))
    html.write_text(text[: head.end()] + "\n" + notice + text[head.end():], encoding="utf-8")
    return hosts
