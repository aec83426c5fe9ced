// Projector page: polls GET /votes twice a second and GET /pool once a second.
// Bars and counts animate towards the new numbers. When /votes cannot be fetched (error,
// or no answer within 2 s) a banner says the numbers on screen are stale; when /pool says
// the app is failing or every database slot is taken, a red banner says so.
// Everything from the server is written with textContent.
(function () {
  "use strict";

  const VOTES_EVERY_MS = 500;
  const POOL_EVERY_MS = 1000;
  const TIMEOUT_MS = 2000;
  // No good answer for this long counts as stale even while a request is still waiting.
  const STALE_AFTER_MS = 2500;

  const body = document.body;
  const bars = document.getElementById("bars");
  const rows = new Map();
  document.querySelectorAll("#bars .bar").forEach(function (li) {
    rows.set(li.dataset.choice, {
      li: li,
      count: li.querySelector("[data-count]"),
      share: li.querySelector("[data-share]"),
      fill: li.querySelector(".bar-fill"),
      shown: 0,
    });
  });
  const total = document.getElementById("total");
  const updated = document.getElementById("updated");
  const stale = document.getElementById("stale");
  const staleSince = document.getElementById("stale-since");
  const failing = document.getElementById("failing");
  const failingWhy = document.getElementById("failing-why");
  const pool = document.getElementById("pool");
  const poolLamps = document.getElementById("pool-lamps");
  const poolUsed = document.getElementById("pool-used");
  const poolSize = document.getElementById("pool-size");

  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  let lastOk = 0;
  let everOk = false;
  let votesInFlight = false;
  let poolInFlight = false;
  let totalShown = 0;

  function clock(date) {
    function two(n) {
      return String(n).padStart(2, "0");
    }
    return two(date.getHours()) + ":" + two(date.getMinutes()) + ":" + two(date.getSeconds());
  }

  // Counts roll up like a meter rather than jump; a new vote also "bumps" its row.
  function animateNumber(el, from, to, onStep) {
    if (reducedMotion || from === to || Math.abs(to - from) > 500) {
      el.textContent = String(to);
      return;
    }
    const start = performance.now();
    const duration = 450;
    function step(now) {
      const t = Math.min(1, (now - start) / duration);
      const value = Math.round(from + (to - from) * (1 - Math.pow(1 - t, 3)));
      el.textContent = String(value);
      if (onStep) {
        onStep(value);
      }
      if (t < 1) {
        requestAnimationFrame(step);
      }
    }
    requestAnimationFrame(step);
  }

  async function getJson(path) {
    const controller = new AbortController();
    const timer = setTimeout(function () {
      controller.abort();
    }, TIMEOUT_MS);
    try {
      const response = await fetch(path, {
        cache: "no-store",
        headers: { accept: "application/json" },
        signal: controller.signal,
      });
      if (!response.ok) {
        throw new Error(path + ": HTTP " + response.status);
      }
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  function render(data) {
    let sum = 0;
    let max = 0;
    rows.forEach(function (row, id) {
      const entry = data[id];
      const count = entry && typeof entry.count === "number" ? entry.count : 0;
      sum += count;
      max = Math.max(max, count);
    });
    // Counts past four digits (a big room, or a flood) get a smaller face, the same in every
    // row, so they never run into the share column.
    bars.dataset.digits = String(Math.min(String(max).length, 7));
    let leader = null;
    rows.forEach(function (row, id) {
      const entry = data[id];
      const count = entry && typeof entry.count === "number" ? entry.count : 0;
      if (count !== row.shown) {
        if (count > row.shown && everOk) {
          row.li.classList.remove("bump");
          // Restart the animation: reading offsetWidth forces the class change to apply.
          void row.li.offsetWidth;
          row.li.classList.add("bump");
        }
        animateNumber(row.count, row.shown, count);
        row.shown = count;
      }
      row.share.textContent = (sum > 0 ? Math.round((count / sum) * 100) : 0) + "%";
      // Scaled to the leader, so the longest bar always spans the track.
      row.fill.style.transform = "scaleX(" + (max > 0 ? count / max : 0) + ")";
      if (count > 0 && count === max && leader === null) {
        leader = id;
      }
    });
    rows.forEach(function (row, id) {
      row.li.classList.toggle("leader", id === leader);
    });
    if (sum !== totalShown) {
      animateNumber(total, totalShown, sum);
      totalShown = sum;
    }
  }

  function showStale() {
    const isStale = !everOk || Date.now() - lastOk > STALE_AFTER_MS;
    stale.hidden = !isStale;
    body.classList.toggle("is-stale", isStale);
    if (isStale) {
      staleSince.textContent = everOk
        ? "last update " + Math.round((Date.now() - lastOk) / 1000) + " s ago, at " + clock(new Date(lastOk))
        : "no results received yet";
    }
  }

  async function pollVotes() {
    if (votesInFlight) {
      showStale();
      return;
    }
    votesInFlight = true;
    try {
      render(await getJson("/votes"));
      everOk = true;
      lastOk = Date.now();
      const now = new Date(lastOk);
      updated.textContent = clock(now);
      updated.dateTime = now.toISOString();
    } catch (_) {
      // Shown by showStale below: the last good numbers stay on screen, dimmed.
    } finally {
      votesInFlight = false;
      showStale();
    }
  }

  function setLamps(used, size) {
    while (poolLamps.children.length < size) {
      poolLamps.appendChild(document.createElement("span")).className = "lamp";
    }
    while (poolLamps.children.length > size && poolLamps.children.length > 1) {
      poolLamps.removeChild(poolLamps.lastElementChild);
    }
    Array.from(poolLamps.children).forEach(function (lamp, i) {
      lamp.classList.toggle("on", i < used);
    });
  }

  function showPool(p) {
    const known = p && typeof p.checked_out === "number" && typeof p.size === "number" && p.size > 0;
    pool.classList.toggle("is-unknown", !known);
    if (!known) {
      poolUsed.textContent = "\u2013";
      poolSize.textContent = "\u2013";
      setLamps(0, poolLamps.children.length);
      pool.classList.remove("is-busy", "is-full");
      failing.hidden = true;
      body.classList.remove("is-failing");
      return;
    }
    const size = Math.min(p.size, 20);
    const used = Math.max(0, Math.min(p.checked_out, p.size));
    poolUsed.textContent = String(p.checked_out);
    poolSize.textContent = String(p.size);
    setLamps(used, size);
    const full = p.checked_out >= p.size;
    pool.classList.toggle("is-full", full);
    pool.classList.toggle("is-busy", !full && used / p.size >= 0.6);

    const isFailing = p.failing === true || full;
    failing.hidden = !isFailing;
    body.classList.toggle("is-failing", isFailing);
    if (isFailing) {
      const why = [];
      if (full) {
        why.push("all " + p.size + " database slots in use");
      }
      if (p.failing === true && p.recent_requests === 1 && p.recent_errors === 1) {
        why.push("the last vote failed");
      } else if (p.failing === true && typeof p.recent_requests === "number" && p.recent_requests > 1) {
        why.push(p.recent_errors + " of the last " + p.recent_requests + " votes failed");
      } else if (p.failing === true && !full) {
        why.push("most recent votes are failing");
      }
      const text = why.join(" \u00b7 ");
      failingWhy.textContent = text.charAt(0).toUpperCase() + text.slice(1);
    }
  }

  async function pollPool() {
    if (poolInFlight) {
      return;
    }
    poolInFlight = true;
    try {
      showPool(await getJson("/pool"));
    } catch (_) {
      // No gauge data (endpoint missing or failing): the gauge says so by going grey.
      showPool(null);
    } finally {
      poolInFlight = false;
    }
  }

  pollVotes();
  pollPool();
  setInterval(pollVotes, VOTES_EVERY_MS);
  setInterval(pollPool, POOL_EVERY_MS);
})();
