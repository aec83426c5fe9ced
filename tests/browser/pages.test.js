// honey's pages in a real browser, against the running app (tests/browser/run.sh starts it).
// Request interception (page.route) stands in for the backend only where a test needs a
// failure or a slow answer on cue; the end-to-end vote goes all the way to the stores.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { PNG } = require("pngjs");
const jsQR = require("jsqr");
const h = require("./helpers");

const REFERRAL = "conf-partner-2026";
let browser;

test.before(async () => {
  browser = await h.launch();
});

test.after(async () => {
  if (browser) {
    await browser.close();
  }
});

// Runs `body` with a fresh page and fails on third-party requests, CSP refusals and
// script errors seen meanwhile.
async function withPage(size, body) {
  const { context, page, problems } = await h.open(browser, size);
  try {
    await body(page);
    assert.deepEqual(problems, [], "the page stayed on its own origin, CSP and script clean");
  } finally {
    await context.close();
  }
}

function countOf(page, choice) {
  return page.locator(`#bars .bar[data-choice="${choice}"] [data-count]`);
}

test("a phone vote is confirmed and reaches the projector within 2 s", async () => {
  const { context: projectorContext, page: projector, problems } = await h.open(browser, "projector");
  try {
    await projector.goto(h.BASE + "/results");
    const before = (await h.votes()).print.count;
    await assert.doesNotReject(
      projector.waitForFunction(
        (n) => document.querySelector('#bars .bar[data-choice="print"] [data-count]').textContent === String(n),
        before,
        { timeout: 5000 },
      ),
    );

    await withPage("phone", async (phone) => {
      await phone.goto(h.BASE + "/");
      const posted = phone.waitForRequest((r) => r.url().endsWith("/vote") && r.method() === "POST");
      await phone.getByRole("button", { name: "Add more print statements" }).click();
      const body = (await posted).postDataJSON();
      assert.deepEqual(body, { choice: "print" }, "no referral on the plain link");

      await phone.locator("#done").waitFor({ state: "visible", timeout: 10000 });
      assert.equal(await phone.locator("#done-choice").textContent(), "Add more print statements");
      assert.equal(await phone.locator("#overlay").isHidden(), true);
      await phone.waitForTimeout(1000); // the cab drives in
      await h.screenshot(phone, "vote-confirmed-phone");
    });

    const confirmedAt = Date.now();
    await projector.waitForFunction(
      (n) => document.querySelector('#bars .bar[data-choice="print"] [data-count]').textContent === String(n),
      before + 1,
      { timeout: 2000 },
    );
    const took = Date.now() - confirmedAt;
    assert.ok(took <= 2000, `projector showed the vote after ${took} ms`);
    assert.match(await projector.locator("#updated").textContent(), /^\d\d:\d\d:\d\d$/);
    assert.equal(await projector.locator("#stale").isHidden(), true, "no stale banner while /votes answers");
    assert.equal(Number(await countOf(projector, "print").textContent()), before + 1);
    console.log(`  projector showed the new count ${took} ms after the confirmation`);
  } finally {
    await projectorContext.close();
  }
  assert.deepEqual(problems, []);
});

test("the referral link carries its code into the vote, with a pending state meanwhile", async () => {
  await withPage("phone", async (page) => {
    let body = null;
    // Answered here after a delay like the real referral check (~3 s), without leaking a
    // database handle in the app under test.
    await page.route("**/vote", async (route) => {
      body = route.request().postDataJSON();
      await new Promise((r) => setTimeout(r, 1500));
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ status: "ok", choice: body.choice }) });
    });
    await page.goto(h.BASE + "/?referral=" + REFERRAL);
    assert.equal(await page.locator(".partner-code").textContent(), REFERRAL);

    await page.getByRole("button", { name: "Ask an AI to explain it" }).click();
    const pending = page.locator("#pending-text");
    await pending.waitFor({ state: "visible" });
    assert.match(await pending.textContent(), /checking your partner code/i);
    assert.equal(await page.locator("#ballot").getAttribute("aria-busy"), "true");
    assert.equal(await page.getByRole("button", { name: "Ask an AI to explain it" }).isDisabled(), true);
    await page.waitForTimeout(400);
    assert.match(await page.locator("#meter").textContent(), /^\d+\.\d s$/);
    await h.screenshot(page, "vote-pending-referral-phone");

    await page.locator("#done").waitFor({ state: "visible", timeout: 5000 });
    assert.deepEqual(body, { choice: "ai", referral: REFERRAL });
  });
});

test("a 503 opens the out-of-order overlay, and retry sends the vote again", async () => {
  await withPage("phone", async (page) => {
    let calls = 0;
    await page.route("**/vote", async (route) => {
      calls += 1;
      if (calls === 1) {
        await route.fulfill({
          status: 503,
          contentType: "application/json",
          body: JSON.stringify({ detail: "Database unavailable: no connection slot within 2 s" }),
        });
      } else {
        await route.fulfill({ status: 200, contentType: "application/json", body: '{"status":"ok","choice":"revert"}' });
      }
    });
    await page.goto(h.BASE + "/?referral=" + REFERRAL);
    await page.getByRole("button", { name: "Revert and pretend it never happened" }).click();

    const overlay = page.getByRole("alertdialog");
    await overlay.waitFor({ state: "visible", timeout: 5000 });
    assert.equal(await page.locator("#overlay-title").textContent(), "The app is down");
    assert.match(await page.locator("#overlay-detail").textContent(), /HTTP 503 · Database unavailable/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "retry", "focus moves to retry");
    assert.equal(await page.locator("#without-code").isVisible(), true, "a referral vote offers the plain link");
    // The viewport, as a phone shows it: the overlay is fixed to the screen.
    await h.screenshot(page, "vote-error-overlay-phone", { fullPage: false });

    await page.getByRole("button", { name: "Try again" }).click();
    await page.locator("#done").waitFor({ state: "visible", timeout: 5000 });
    assert.equal(calls, 2);
    assert.equal(await overlay.isHidden(), true);
  });
});

test("no network and a refused referral code also explain themselves", async () => {
  await withPage("phone", async (page) => {
    await page.route("**/vote", (route) => route.abort("internetdisconnected"));
    await page.goto(h.BASE + "/");
    await page.getByRole("button", { name: "Turn it off and on again" }).click();
    await page.getByRole("alertdialog").waitFor({ state: "visible" });
    assert.equal(await page.locator("#overlay-title").textContent(), "No connection");
    assert.equal(await page.locator("#without-code").isHidden(), true);
    await page.keyboard.press("Escape");
    assert.equal(await page.getByRole("alertdialog").isHidden(), true, "Escape closes the overlay");
    assert.equal(await page.evaluate(() => document.activeElement.dataset.choice), "restart");

    await page.unroute("**/vote");
    await page.route("**/vote", (route) =>
      route.fulfill({ status: 400, contentType: "application/json", body: '{"detail":"Invalid referral code"}' }),
    );
    await page.goto(h.BASE + "/?referral=nope");
    await page.getByRole("button", { name: "Turn it off and on again" }).click();
    await page.getByRole("alertdialog").waitFor({ state: "visible" });
    assert.equal(await page.locator("#overlay-title").textContent(), "That partner code didn't work");
    assert.equal(await page.locator("#without-code").getAttribute("href"), "/");
  });
});

test("the projector warns when results are stale and when the app is failing", async () => {
  await withPage("projector", async (page) => {
    let votesDown = false;
    await page.route("**/votes", (route) =>
      votesDown ? route.fulfill({ status: 503, contentType: "application/json", body: '{"detail":"down"}' }) : route.continue(),
    );
    await page.route("**/pool", (route) =>
      route.fulfill({
        status: 200,
        contentType: "application/json",
        body: JSON.stringify({ checked_out: 3, size: 5, failing: false, recent_errors: 0, recent_requests: 12 }),
      }),
    );
    await page.goto(h.BASE + "/results");
    await page.waitForFunction(() => document.getElementById("updated").textContent !== "never");
    await page.waitForFunction(() => document.getElementById("pool-used").textContent === "3");
    assert.equal(await page.locator("#pool-size").textContent(), "5");
    assert.equal(await page.locator("#pool .lamp.on").count(), 3);
    assert.equal(await page.locator("#stale").isHidden(), true);
    assert.equal(await page.locator("#failing").isHidden(), true);
    await page.waitForTimeout(800); // let the bars finish growing
    await h.screenshot(page, "results-busy-projector");

    votesDown = true;
    await page.unroute("**/pool");
    await page.route("**/pool", (route) =>
      route.fulfill({
        status: 200,
        contentType: "application/json",
        body: JSON.stringify({ checked_out: 5, size: 5, failing: true, recent_errors: 9, recent_requests: 10 }),
      }),
    );
    await page.locator("#stale").waitFor({ state: "visible", timeout: 4000 });
    await page.locator("#failing").waitFor({ state: "visible", timeout: 2000 });
    assert.match(await page.locator("#failing").textContent(), /All 5 database slots in use/);
    assert.match(await page.locator("#stale").textContent(), /last update \d+ s ago/);
    assert.equal(await page.locator("#pool .lamp.on").count(), 5);
    assert.equal(await page.locator("#pool").getAttribute("class"), "pool is-full");
    await h.screenshot(page, "results-stale-failing-projector");

    // /pool missing (an older deployment): the gauge greys out, nothing else breaks.
    votesDown = false;
    await page.unroute("**/pool");
    await page.route("**/pool", (route) => route.fulfill({ status: 404, contentType: "application/json", body: '{"detail":"Not found"}' }));
    await page.locator("#stale").waitFor({ state: "hidden", timeout: 4000 });
    await page.waitForFunction(() => document.getElementById("pool").classList.contains("is-unknown"));
    assert.equal(await page.locator("#failing").isHidden(), true);
  });
});

test("counts of a big room stay clear of the shares on the projector", async () => {
  for (const counts of [[1234, 987, 4321, 56, 7], [98765, 1, 54321, 0, 12], [1234567, 0, 0, 0, 1]]) {
    await withPage("projector", async (page) => {
      const ids = ["print", "stare", "ai", "revert", "restart"];
      const body = Object.fromEntries(ids.map((id, i) => [id, { count: counts[i], label: id }]));
      await page.route("**/votes", (route) =>
        route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) }),
      );
      await page.goto(h.BASE + "/results");
      const max = String(Math.max(...counts));
      await page.waitForFunction((m) => [...document.querySelectorAll("[data-count]")].some((e) => e.textContent === m), max);
      await page.waitForTimeout(900); // counts and bars finish animating
      for (const id of ids) {
        const row = page.locator(`#bars .bar[data-choice="${id}"]`);
        const count = await row.locator("[data-count]").boundingBox();
        const share = await row.locator("[data-share]").boundingBox();
        const rowBox = await row.boundingBox();
        assert.ok(count.x >= share.x + share.width, `${id} ${counts}: count ${JSON.stringify(count)} overlaps share ${JSON.stringify(share)}`);
        assert.ok(count.x + count.width <= rowBox.x + rowBox.width, `${id} ${counts}: count leaves its row`);
      }
      if (max.length === 5) {
        await h.screenshot(page, "results-big-room-projector");
      }
    });
  }
});

// The QR codes are decoded from what the browser drew: screenshot → PNG → jsQR.
async function decodeQr(locator) {
  const png = PNG.sync.read(await locator.screenshot());
  const code = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  assert.ok(code, "a QR code was found in the screenshot");
  return code.data;
}

test("the QR codes decode to the vote link and the referral link", async () => {
  for (const [query, suffix] of [
    ["", ""],
    ["?conf=KubeCon%20EU", "conf=KubeCon%20EU"],
  ]) {
    await withPage("projector", async (page) => {
      await page.goto(h.BASE + "/qr" + query);
      const frames = page.locator(".qr-frame");
      assert.equal(await frames.count(), 2);
      const left = h.BASE + "/" + (suffix ? "?" + suffix : "");
      const right = h.BASE + "/?referral=" + REFERRAL + (suffix ? "&" + suffix : "");
      assert.equal(await decodeQr(frames.nth(0)), left);
      assert.equal(await decodeQr(frames.nth(1)), right);
      const printed = await page.locator("[data-qr-url]").allTextContents();
      assert.deepEqual(printed, [left, right], "the URLs are printed under the codes");
      const boxes = [await frames.nth(0).boundingBox(), await frames.nth(1).boundingBox()];
      assert.ok(boxes[0].x + boxes[0].width <= boxes[1].x, "plain link left, referral link right");
      assert.ok(boxes[0].y + boxes[0].height <= 1080 && boxes[1].y + boxes[1].height <= 1080, "both fit the projector");
      if (suffix) {
        assert.equal(await page.locator(".neon-name").textContent(), "KubeCon EU", "?conf= brands the page");
      }
    });
  }
});

test("admin: asks for the token, refuses a wrong one, shows status and asks twice before a reset", async () => {
  await withPage("phone", async (page) => {
    await page.goto(h.BASE + "/admin");
    const token = page.getByLabel("Admin token");
    await token.waitFor({ state: "visible" });
    assert.equal(await page.locator("#dash").isHidden(), true, "nothing without a token");

    await token.fill("wrong-" + h.ADMIN_TOKEN);
    await page.getByRole("button", { name: "Unlock" }).click();
    await page.locator("#login-error").waitFor({ state: "visible", timeout: 5000 });
    assert.match(await page.locator("#login-error").textContent(), /token|admin/i);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("honey-admin-token")), null);

    await token.fill(h.ADMIN_TOKEN);
    await page.getByRole("button", { name: "Unlock" }).click();
    await page.waitForFunction(() => /^Status at /.test(document.getElementById("dash-updated").textContent), null, {
      timeout: 5000,
    });
    const db = await page.locator('.tally tr[data-choice="print"] [data-db]').textContent();
    assert.match(db, /^\d+$/, "PostgreSQL count shown");
    assert.match(await page.locator("#slots-size").textContent(), /^\d+$/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("honey-admin-token")), h.ADMIN_TOKEN);

    // Kept for the tab: a reload stays unlocked.
    await page.reload();
    await page.waitForFunction(() => /^Status at /.test(document.getElementById("dash-updated").textContent));
    await h.screenshot(page, "admin-status-phone");

    // Reset is intercepted: the real one would empty a database others may share.
    let auth = null;
    await page.route("**/admin/reset", (route) => {
      auth = route.request().headers().authorization;
      return route.fulfill({ status: 200, contentType: "application/json", body: '{"status":"reset"}' });
    });
    await page.getByRole("button", { name: "Reset votes…" }).click();
    assert.equal(auth, null, "the first click only asks");
    await page.getByRole("button", { name: "Yes, delete all votes" }).click();
    await page.waitForFunction(() => /^Done/.test(document.getElementById("reset-result").textContent));
    assert.equal(auth, "Bearer " + h.ADMIN_TOKEN);

    await page.getByRole("button", { name: "Forget token" }).click();
    await token.waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("honey-admin-token")), null);
  });
});

const PAGES = [
  ["vote", "/"],
  ["results", "/results"],
  ["qr", "/qr"],
  ["admin", "/admin"],
];

test("screenshots of every page at phone and projector sizes", async () => {
  for (const size of ["phone", "projector"]) {
    for (const [name, path] of PAGES) {
      await withPage(size, async (page) => {
        const response = await page.goto(h.BASE + path);
        assert.equal(response.status(), 200);
        if (name === "results") {
          await page.waitForFunction(() => document.getElementById("updated").textContent !== "never");
          await page.waitForTimeout(800); // let the bars finish growing
        }
        const file = await h.screenshot(page, `${name}-${size}`);
        console.log("  " + file);
        if (size === "projector" && (name === "results" || name === "qr")) {
          const height = await page.evaluate(() => document.documentElement.scrollHeight);
          assert.ok(height <= 1080, `${path} fits one projector screen (${height}px)`);
        }
      });
    }
  }
});

test("the vote page weighs under 150 KB, with fingerprinted assets cached for good", async () => {
  await withPage("phone", async (page) => {
    const sizes = [];
    page.on("response", async (response) => {
      try {
        sizes.push({ url: response.url(), bytes: (await response.body()).length, headers: response.headers() });
      } catch (_) {
        // Redirects and aborted requests have no body.
      }
    });
    const response = await page.goto(h.BASE + "/", { waitUntil: "networkidle" });
    await page.evaluate(() => document.fonts.ready);
    await page.waitForTimeout(300);
    const headers = response.headers();
    assert.equal(headers["cache-control"], "no-cache");
    assert.match(headers["content-security-policy"], /^default-src 'self'/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    assert.ok(headers["referrer-policy"]);

    const total = sizes.reduce((sum, s) => sum + s.bytes, 0);
    for (const s of sizes) {
      console.log(`  ${String(s.bytes).padStart(7)}  ${new URL(s.url).pathname}`);
    }
    console.log(`  ${String(total).padStart(7)}  total (${(total / 1024).toFixed(1)} KB)`);
    assert.ok(total < 150 * 1024, `vote page weighs ${total} bytes`);
    assert.ok(sizes.some((s) => s.url.endsWith(".woff2")), "the fonts were part of the load");
    for (const s of sizes.filter((x) => new URL(x.url).pathname.startsWith("/static/"))) {
      assert.match(new URL(s.url).pathname, /\.[0-9a-f]{10}\.[a-z0-9]+$/, "fingerprinted: " + s.url);
      assert.equal(s.headers["cache-control"], "public, max-age=31536000, immutable", s.url);
    }
  });
});

test("accessibility: every control is labelled, vote page text contrast ≥ 4.5:1", async () => {
  const labelRules = ["button-name", "label", "link-name", "image-alt", "aria-dialog-name", "document-title", "html-has-lang", "select-name", "input-button-name"];
  for (const [name, path] of PAGES) {
    await withPage("phone", async (page) => {
      await page.goto(h.BASE + path);
      const violations = await h.axe(page, labelRules);
      assert.deepEqual(violations, [], `${name}: axe label rules`);
    });
  }

  await withPage("phone", async (page) => {
    await page.route("**/vote", (route) =>
      route.fulfill({ status: 503, contentType: "application/json", body: '{"detail":"Database unavailable"}' }),
    );
    await page.goto(h.BASE + "/?referral=" + REFERRAL);
    await page.evaluate(() => document.fonts.ready);
    const states = {};
    states.ballot = await h.lowContrast(page, 4.5);
    const axeContrast = await h.axe(page, ["color-contrast"]);
    await page.getByRole("button", { name: "Stare at the code until it confesses" }).click();
    await page.getByRole("alertdialog").waitFor({ state: "visible" });
    states.overlay = await h.lowContrast(page, 4.5);
    await page.unroute("**/vote");
    await page.route("**/vote", (route) => route.fulfill({ status: 200, contentType: "application/json", body: '{"status":"ok","choice":"stare"}' }));
    await page.getByRole("button", { name: "Try again" }).click();
    await page.locator("#done").waitFor({ state: "visible" });
    states.confirmed = await h.lowContrast(page, 4.5);
    for (const [state, result] of Object.entries(states)) {
      assert.ok(result.checked >= 3, `${state}: text elements were checked (${result.checked})`);
      assert.deepEqual(result.failures, [], `${state}: contrast below 4.5:1`);
    }
    assert.deepEqual(axeContrast, [], "axe color-contrast on the vote page");
  });
});
