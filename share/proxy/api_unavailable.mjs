// Loaded into configurable-http-proxy (`node --import <this file> <proxy> ...`, see
// docs/restarts.md): while the hub is away, requests to the annotation API get what the
// API itself answers when it cannot serve, a JSON 503 with Retry-After.
//
// No option of the proxy does it. Without this, a request the proxy cannot hand to the
// hub gets a 404 (no route: a new proxy before the hub has added its route) or a 503
// (the hub does not answer), with the hub's error page as body if the hub is up and
// "Not Found" / "Service Unavailable" in plain text if not, never a Retry-After: the
// proxy copies only Content-Type and Content-Encoding from its --error-target, and
// --error-path serves files as text/html. A 404 for an annotation that exists is the
// worst of these: a client takes it for the truth.
//
// Only API requests change; pages, user servers and websockets keep the proxy's answers.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// The proxy script this process runs (argv[1]; npm's .bin/ holds a symlink to it). Its
// module, loaded here first, is the one the script imports (one module per real path).
const script = fs.realpathSync(process.argv[1]);
const library = path.join(path.dirname(script), "..", "lib", "configproxy.js");
const loaded = await import(pathToFileURL(library).href);
// configurable-http-proxy 5 exports the class as the module's default, 4 as a property.
const ConfigurableProxy = loaded.ConfigurableProxy ?? loaded.default?.ConfigurableProxy;
const proxyError = ConfigurableProxy?.prototype?.handleProxyError;
if (typeof proxyError !== "function") {
  // Better no proxy than one that silently answers outside the API's contract.
  throw new Error(`${library} has no ConfigurableProxy.handleProxyError to extend`);
}

const RETRY_AFTER_SECONDS = "1";
// Errors that mean the request never reached the hub, so nothing was done.
const NOT_SENT = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "ENOENT"]);

// The API's prefix, from the hub's error page the hub passes as --error-target
// (<hub url>error/, base_url included); the default one without it.
function apiPrefix(errorTarget) {
  if (errorTarget) {
    const target = new URL(errorTarget).pathname;
    if (target.endsWith("/hub/error/")) return target.replace(/error\/$/, "annotations/api/");
  }
  return "/hub/annotations/api/";
}

function message(code, error) {
  if (code === 404) {
    return "The hub is starting and cannot take requests yet; nothing was done. Retry in a second.";
  }
  if (!error || NOT_SENT.has(error.code)) {
    return "The hub is not running (it may be restarting); nothing was done. Retry in a second.";
  }
  // Reset or timed out after the request was sent: the hub may have applied it.
  return (
    "The hub stopped answering (it may be restarting) after this request was sent: it may " +
    "have been applied. Read before repeating a write, or repeat it with If-Match."
  );
}

ConfigurableProxy.prototype.handleProxyError = function (code, kind, req, res, error) {
  if ((code === 404 || code === 503) && kind === "web" && res && !res.headersSent) {
    this.apiPrefix ??= apiPrefix(this.errorTarget);
    const pathname = (req.url || "").split("?", 1)[0];
    if (`${pathname}/`.startsWith(this.apiPrefix)) {
      this.metrics.requestsProxyCount.labels(503).inc();
      const why = error ? error.code || error.message : "no route";
      this.log.error("503 %s %s (proxy %s: %s)", req.method, pathname, code, why);
      const body = JSON.stringify({ error: { status: 503, message: message(code, error) } });
      res.writeHead(503, {
        "Content-Type": "application/json; charset=UTF-8",
        "Retry-After": RETRY_AFTER_SECONDS,
        "Cache-Control": "no-store",
      });
      res.end(body);
      return;
    }
  }
  return proxyError.call(this, code, kind, req, res, error);
};
