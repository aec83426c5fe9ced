// Admin page: asks for the admin token, keeps it in sessionStorage (this tab only), and
// sends it as a bearer token with every admin request. The server enforces the token;
// this page only decides what to show. Status refreshes every 2 s; reset asks twice.
(function () {
  "use strict";

  const KEY = "honey-admin-token";
  const REFRESH_MS = 2000;
  const TIMEOUT_MS = 5000;

  const login = document.getElementById("login");
  const tokenInput = document.getElementById("token");
  const loginError = document.getElementById("login-error");
  const dash = document.getElementById("dash");
  const dashUpdated = document.getElementById("dash-updated");
  const forget = document.getElementById("forget");
  const rows = Array.from(document.querySelectorAll(".tally tbody tr[data-choice]"));
  const totalDb = document.getElementById("total-db");
  const totalRedis = document.getElementById("total-redis");
  const slots = document.querySelector(".slots");
  const slotsUsed = document.getElementById("slots-used");
  const slotsSize = document.getElementById("slots-size");
  const lookups = document.getElementById("lookups");
  const lookupsNone = document.getElementById("lookups-none");
  const problemsPanel = document.getElementById("problems-panel");
  const problems = document.getElementById("problems");
  const resetAsk = document.getElementById("reset-ask");
  const resetButton = document.getElementById("reset");
  const resetConfirm = document.getElementById("reset-confirm");
  const resetYes = document.getElementById("reset-yes");
  const resetNo = document.getElementById("reset-no");
  const resetResult = document.getElementById("reset-result");

  let timer = null;

  function storedToken() {
    try {
      return sessionStorage.getItem(KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function storeToken(token) {
    try {
      if (token) {
        sessionStorage.setItem(KEY, token);
      } else {
        sessionStorage.removeItem(KEY);
      }
    } catch (_) {
      // Private mode without storage: the token lives in memory only, see `memoryToken`.
    }
    memoryToken = token;
  }

  let memoryToken = storedToken();

  class AuthError extends Error {}

  async function call(method, path) {
    const controller = new AbortController();
    const t = setTimeout(function () {
      controller.abort();
    }, TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, {
        method: method,
        cache: "no-store",
        headers: { accept: "application/json", authorization: "Bearer " + memoryToken },
        signal: controller.signal,
      });
    } catch (e) {
      throw new Error(e && e.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s" : "server unreachable");
    } finally {
      clearTimeout(t);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(detail || "The token was refused.");
    }
    if (!response.ok) {
      throw new Error("HTTP " + response.status + (detail ? ": " + detail : ""));
    }
    return body;
  }

  function showLogin(message) {
    clearInterval(timer);
    timer = null;
    dash.hidden = true;
    login.hidden = false;
    loginError.textContent = message || "";
    loginError.hidden = !message;
    tokenInput.focus();
  }

  function number(v) {
    return typeof v === "number" && isFinite(v) ? v : null;
  }

  function fill(el, v) {
    el.textContent = v === null ? "\u2013" : String(v);
  }

  function render(status) {
    const db = status && status.votes_db;
    const redis = status && status.votes_redis;
    let sumDb = db ? 0 : null;
    let sumRedis = redis ? 0 : null;
    rows.forEach(function (row) {
      const id = row.dataset.choice;
      const a = db ? number(db[id]) : null;
      const b = redis ? number(redis[id]) : null;
      fill(row.querySelector("[data-db]"), a);
      fill(row.querySelector("[data-redis]"), b);
      if (sumDb !== null) {
        sumDb += a || 0;
      }
      if (sumRedis !== null) {
        sumRedis += b || 0;
      }
      // PostgreSQL is the record; a Redis count that differs is worth a look.
      const differs = a !== null && b !== null && a !== b;
      row.querySelector("[data-redis]").classList.toggle("mismatch", differs);
    });
    fill(totalDb, sumDb);
    fill(totalRedis, sumRedis);

    const p = (status && status.pool) || {};
    fill(slotsUsed, number(p.checked_out));
    fill(slotsSize, number(p.size));
    slots.classList.toggle("is-full", number(p.size) !== null && number(p.checked_out) >= p.size && p.size > 0);

    lookups.replaceChildren();
    const outcomes = status && status.referral_lookups && typeof status.referral_lookups === "object"
      ? Object.entries(status.referral_lookups)
      : [];
    outcomes.forEach(function (entry) {
      const dt = document.createElement("dt");
      dt.textContent = entry[0];
      const dd = document.createElement("dd");
      dd.textContent = typeof entry[1] === "object" ? JSON.stringify(entry[1]) : String(entry[1]);
      lookups.append(dt, dd);
    });
    lookupsNone.hidden = outcomes.length > 0;

    problems.replaceChildren();
    const list = status && Array.isArray(status.problems) ? status.problems : [];
    list.forEach(function (text) {
      const li = document.createElement("li");
      li.textContent = String(text);
      problems.appendChild(li);
    });
    problemsPanel.hidden = list.length === 0;
  }

  async function refresh() {
    try {
      render(await call("GET", "/admin/status"));
      const now = new Date();
      dashUpdated.textContent = "Status at " + now.toLocaleTimeString();
      return true;
    } catch (e) {
      if (e instanceof AuthError) {
        storeToken("");
        showLogin(e.message);
        return false;
      }
      dashUpdated.textContent = "Status unavailable: " + e.message;
      return true;
    }
  }

  async function unlock() {
    login.hidden = true;
    dash.hidden = false;
    dashUpdated.textContent = "Loading\u2026";
    if (await refresh()) {
      clearInterval(timer);
      timer = setInterval(refresh, REFRESH_MS);
    }
  }

  login.addEventListener("submit", function (event) {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) {
      showLogin("Enter the admin token.");
      return;
    }
    storeToken(token);
    tokenInput.value = "";
    unlock();
  });

  forget.addEventListener("click", function () {
    storeToken("");
    showLogin("");
  });

  function askReset(asking) {
    resetAsk.hidden = asking;
    resetConfirm.hidden = !asking;
    (asking ? resetNo : resetButton).focus();
  }

  resetButton.addEventListener("click", function () {
    resetResult.textContent = "";
    askReset(true);
  });
  resetNo.addEventListener("click", function () {
    askReset(false);
  });
  resetYes.addEventListener("click", async function () {
    resetYes.disabled = true;
    resetResult.textContent = "Resetting\u2026";
    try {
      await call("POST", "/admin/reset");
      resetResult.textContent = "Done: all votes deleted at " + new Date().toLocaleTimeString() + ".";
      await refresh();
    } catch (e) {
      if (e instanceof AuthError) {
        storeToken("");
        showLogin(e.message);
      } else {
        resetResult.textContent = "Reset failed: " + e.message;
      }
    } finally {
      resetYes.disabled = false;
      askReset(false);
    }
  });

  if (memoryToken) {
    unlock();
  } else {
    showLogin("");
  }
})();
