// Vote page: one tap sends POST /vote. While it is out, a pending line (with a running
// meter) says what is happening; a referral vote takes seconds because the partner code
// is checked. Success shows a confirmation; any failure (HTTP error, timeout, no network)
// opens the "out of order" overlay with a retry. Text from the server goes in through
// textContent only.
(function () {
  "use strict";

  // A referral check takes ~3 s when all is well; past this the app is not answering.
  const TIMEOUT_MS = 15000;

  const main = document.getElementById("vote");
  // Rendered (escaped) by the server from ?referral=, so the page and the vote agree.
  const referral = main.dataset.referral || "";
  const ballot = document.getElementById("ballot");
  const buttons = Array.from(document.querySelectorAll("button[data-choice]"));
  const pendingBox = document.getElementById("pending-box");
  const pendingText = document.getElementById("pending-text");
  const meter = document.getElementById("meter");
  const done = document.getElementById("done");
  const doneChoice = document.getElementById("done-choice");
  const again = document.getElementById("again");
  const overlay = document.getElementById("overlay");
  const overlayTitle = document.getElementById("overlay-title");
  const overlayText = document.getElementById("overlay-text");
  const overlayDetail = document.getElementById("overlay-detail");
  const retry = document.getElementById("retry");
  const dismiss = document.getElementById("dismiss");
  const withoutCode = document.getElementById("without-code");

  let lastChoice = null;
  let busy = false;
  let meterTimer = null;
  let returnFocusTo = null;

  function labelOf(choice) {
    const b = buttons.find(function (x) {
      return x.dataset.choice === choice;
    });
    return b ? b.querySelector(".choice-label").textContent : choice;
  }

  function setBusy(on, choice) {
    busy = on;
    ballot.setAttribute("aria-busy", on ? "true" : "false");
    buttons.forEach(function (b) {
      b.disabled = on;
      b.classList.toggle("selected", on && b.dataset.choice === choice);
    });
  }

  function startPending() {
    pendingText.textContent = referral ? "Checking your partner code\u2026" : "Sending your vote\u2026";
    pendingBox.hidden = false;
    const started = Date.now();
    meter.textContent = "0.0 s";
    meterTimer = setInterval(function () {
      const s = (Date.now() - started) / 1000;
      meter.textContent = s.toFixed(1) + " s";
      if (!referral && s > 2) {
        pendingText.textContent = "Still sending\u2026";
      }
    }, 100);
  }

  function stopPending() {
    clearInterval(meterTimer);
    meterTimer = null;
    pendingBox.hidden = true;
  }

  function showDone(choice) {
    doneChoice.textContent = labelOf(choice);
    ballot.hidden = true;
    done.hidden = false;
    done.focus();
  }

  function backToBallot() {
    done.hidden = true;
    ballot.hidden = false;
    const first = buttons[0];
    if (first) {
      first.focus();
    }
  }

  // What went wrong, in the words a person in the audience needs.
  function explain(failure) {
    if (failure.kind === "timeout") {
      return {
        title: "The app stopped answering",
        text: "Your vote took longer than " + TIMEOUT_MS / 1000 + " s. It may not have been counted.",
      };
    }
    if (failure.kind === "network") {
      return {
        title: "No connection",
        text: "Could not reach the server. Check your Wi-Fi and try again.",
      };
    }
    if (failure.status === 400 && referral && /referral/i.test(failure.detail || "")) {
      return {
        title: "That partner code didn't work",
        text: "The code in your link was not accepted. You can still vote without it.",
      };
    }
    if (failure.status >= 500) {
      return {
        title: "The app is down",
        text: "The server could not take your vote right now.",
      };
    }
    return { title: "Your vote didn't make it", text: "The server refused the vote." };
  }

  function showOverlay(failure) {
    const words = explain(failure);
    overlayTitle.textContent = words.title;
    overlayText.textContent = words.text;
    const bits = [];
    if (failure.status) {
      bits.push("HTTP " + failure.status);
    }
    if (failure.detail) {
      bits.push(failure.detail);
    }
    overlayDetail.textContent = bits.join(" \u00b7 ");
    overlayDetail.hidden = bits.length === 0;
    withoutCode.hidden = !referral;
    returnFocusTo = document.activeElement;
    overlay.hidden = false;
    retry.focus();
  }

  function hideOverlay() {
    overlay.hidden = true;
    const target = buttons.find(function (b) {
      return b.dataset.choice === lastChoice;
    });
    (target || returnFocusTo || buttons[0]).focus();
  }

  async function readDetail(response) {
    try {
      const body = await response.json();
      return body && typeof body.detail === "string" ? body.detail.slice(0, 300) : "";
    } catch (_) {
      return "";
    }
  }

  async function send(choice) {
    if (busy) {
      return;
    }
    lastChoice = choice;
    overlay.hidden = true;
    setBusy(true, choice);
    startPending();

    const payload = { choice: choice };
    if (referral) {
      payload.referral = referral;
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(function () {
      timedOut = true;
      controller.abort();
    }, TIMEOUT_MS);

    let failure = null;
    try {
      const response = await fetch("/vote", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(payload),
        cache: "no-store",
        credentials: "same-origin",
        signal: controller.signal,
      });
      if (!response.ok) {
        failure = { kind: "http", status: response.status, detail: await readDetail(response) };
      }
    } catch (_) {
      failure = { kind: timedOut ? "timeout" : "network" };
    } finally {
      clearTimeout(timer);
      stopPending();
      setBusy(false, null);
    }

    if (failure) {
      showOverlay(failure);
    } else {
      showDone(choice);
    }
  }

  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      send(b.dataset.choice);
    });
  });

  retry.addEventListener("click", function () {
    if (lastChoice) {
      send(lastChoice);
    }
  });
  dismiss.addEventListener("click", hideOverlay);
  again.addEventListener("click", backToBallot);

  // The overlay is modal: Escape closes it, Tab stays inside it.
  overlay.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      hideOverlay();
      return;
    }
    if (event.key !== "Tab") {
      return;
    }
    const focusable = Array.from(overlay.querySelectorAll("button, a[href]")).filter(function (el) {
      return !el.hidden && el.offsetParent !== null;
    });
    if (focusable.length === 0) {
      return;
    }
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
})();
