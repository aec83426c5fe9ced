// Shared set-up for the browser tests: Debian's Chromium through playwright-core (never a
// downloaded browser), the two screen sizes the talk uses, and guards that fail a test on
// a third-party request, a CSP violation or a script error.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const BASE = process.env.HONEY_BASE_URL || "http://127.0.0.1:3000";
const ORIGIN = new URL(BASE).origin;
const SCREENSHOTS = process.env.HONEY_SCREENSHOTS || path.join(__dirname, "../../artifacts/screenshots");
const ADMIN_TOKEN = process.env.HONEY_ADMIN_TOKEN || "";

const VIEWPORTS = {
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 },
  projector: { viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 1 },
};

async function launch() {
  // Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
  return chromium.launch({
    executablePath: process.env.HONEY_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// A page at one of the two sizes, with guards. `problems` collects what must not happen.
async function open(browser, size) {
  const context = await browser.newContext({ ...VIEWPORTS[size], reducedMotion: "no-preference" });
  const page = await context.newPage();
  const problems = [];
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith("data:") && new URL(url).origin !== ORIGIN) {
      problems.push("third-party request: " + url);
    }
  });
  page.on("console", (msg) => {
    const text = msg.text();
    // Failed fetches that a test provoked on purpose log "Failed to load resource";
    // those are expected. CSP refusals and script errors are not.
    if (/Content Security Policy|Refused to/i.test(text)) {
      problems.push("CSP: " + text);
    }
  });
  page.on("pageerror", (err) => problems.push("script error: " + err.message));
  return { context, page, problems };
}

async function screenshot(page, name, { fullPage = true } = {}) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  // Fonts first: a screenshot in a fallback font would say nothing about the look.
  await page.evaluate(() => document.fonts.ready);
  const file = path.join(SCREENSHOTS, name + ".png");
  await page.screenshot({ path: file, fullPage });
  return file;
}

async function votes() {
  const response = await fetch(BASE + "/votes", { cache: "no-store" });
  if (!response.ok) {
    throw new Error("/votes: HTTP " + response.status);
  }
  return response.json();
}

// WCAG 2 contrast of every visible text-bearing element, computed in the page from the
// computed styles: text colour over the first opaque background behind it (semi-opaque
// layers composited on the way up). Returns the failures below `min`.
async function lowContrast(page, min) {
  return page.evaluate((min) => {
    function parse(c) {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) {
        return null;
      }
      const p = m[1].split(/[,\s/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    }
    function over(top, bottom) {
      const a = top.a + bottom.a * (1 - top.a);
      if (a === 0) {
        return { r: 0, g: 0, b: 0, a: 0 };
      }
      const mix = (x, y) => (x * top.a + y * bottom.a * (1 - top.a)) / a;
      return { r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a: a };
    }
    function background(el) {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) {
          layers.push(c);
          if (c.a >= 1) {
            break;
          }
        }
      }
      let acc = { r: 255, g: 255, b: 255, a: 1 };
      for (let i = layers.length - 1; i >= 0; i--) {
        acc = over(layers[i], acc);
      }
      return acc;
    }
    function lum(c) {
      const f = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
      };
      return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    }
    function visible(el) {
      const s = getComputedStyle(el);
      if (s.visibility !== "visible" || parseFloat(s.opacity) === 0) {
        return false;
      }
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && el.closest("[hidden]") === null && el.getClientRects().length > 0;
    }
    const failures = [];
    let checked = 0;
    document.querySelectorAll("body *").forEach((el) => {
      const ownText = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!ownText || !visible(el) || el.closest(".sr-only")) {
        return;
      }
      checked++;
      const bg = background(el);
      let fg = parse(getComputedStyle(el).color);
      fg = over(fg, bg);
      const a = lum(fg);
      const b = lum(bg);
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < min) {
        failures.push({ text: el.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100 });
      }
    });
    return { checked, failures };
  }, min);
}

// axe-core, injected from the npm package (no network), limited to the given rules.
async function axe(page, rules) {
  const source = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  // Evaluated through DevTools: a <script> tag would be refused by the page's CSP.
  await page.evaluate(source);
  return page.evaluate(async (rules) => {
    const result = await window.axe.run(document, { runOnly: { type: "rule", values: rules } });
    return result.violations.map((v) => ({
      id: v.id,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  }, rules);
}

module.exports = { BASE, ORIGIN, ADMIN_TOKEN, SCREENSHOTS, VIEWPORTS, launch, open, screenshot, votes, lowContrast, axe };
