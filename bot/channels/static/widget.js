/* Backline chat widget: talks to the REST channel (POST /webhooks/rest/webhook) and reads
 * GET /widget/state/<id> after each reply for the triage level (emergency banner) and, on a
 * reload, the transcript. Message text is only ever set with textContent, never as HTML. */
(function () {
  "use strict";

  var STORAGE_KEY = "backline.session_id";
  // Paths relative to this script (<base>/widget/widget.js), so the widget also works behind a
  // reverse proxy that serves Backline under a sub-path such as https://example.org/backline/.
  var BASE = new URL("../", document.currentScript.src).href;
  var WEBHOOK = BASE + "webhooks/rest/webhook";

  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var typing = document.getElementById("typing");
  var banner = document.getElementById("emergency-banner");
  var bannerText = document.getElementById("emergency-text");
  var footnoteNumber = document.getElementById("footnote-number");
  var summaryButton = document.getElementById("summary-button");
  var restartButton = document.getElementById("restart-button");

  var sessionId = null;
  var stateSeq = 0;         // `seq` of the latest /widget/state answer (incremental polls)
  var pending = Promise.resolve();   // messages go out one after another, in order
  var inFlight = 0;
  var emergencyNumber = "911";

  if (window.self !== window.top) {
    document.documentElement.classList.add("embedded");
  }

  function newSessionId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function storedSessionId() {
    try {
      return window.localStorage.getItem(STORAGE_KEY);
    } catch (e) {
      return null;   // storage blocked: the conversation lasts as long as the page
    }
  }

  function storeSessionId(id) {
    try {
      window.localStorage.setItem(STORAGE_KEY, id);
    } catch (e) { /* see storedSessionId */ }
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function bubble(from, text) {
    var wrapper = document.createElement("div");
    wrapper.className = "message " + from;
    var p = document.createElement("p");
    p.className = "bubble";
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = from === "user" ? "You: " : from === "bot" ? "Backline: " : "Notice: ";
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    p.appendChild(who);
    p.appendChild(body);
    wrapper.appendChild(p);
    log.appendChild(wrapper);
    scrollToEnd();
    return wrapper;
  }

  function removeChoices() {
    var groups = log.querySelectorAll(".choices");
    for (var i = 0; i < groups.length; i++) {
      groups[i].parentNode.removeChild(groups[i]);
    }
  }

  /* The visit summary (action_visit_summary's `custom.visit_summary`) as plain text. */
  function summaryText(summary) {
    if (typeof summary === "string") return summary;
    summary = summary || {};
    function shown(v) {
      if (v === null || v === undefined || v === "" || v === "not given") return "not given";
      if (Array.isArray(v)) return v.length ? v.map(shown).join(", ") : "none";
      if (typeof v === "object") {
        return Object.keys(v).map(function (k) { return k.replace(/_/g, " ") + ": " + shown(v[k]); }).join("; ");
      }
      return String(v);
    }
    var lines = ["Backline visit summary" + (summary.date ? " (" + summary.date + ")" : "")];
    if (summary.note) lines.push(String(summary.note));
    var reported = summary.reported || {};
    lines.push("", "What was reported:",
      "- Where: " + shown(reported.body_part),
      "- How long: " + shown(reported.duration),
      "- Pain score: " + (shown(reported.severity) === "not given" ? "not given" : shown(reported.severity) + "/10"),
      "- Started with or worse with: " + shown(reported.trigger));
    if (reported.symptoms && reported.symptoms.length) {
      lines.push("- Symptoms mentioned: " + shown(reported.symptoms));
    }
    if (summary.own_words && summary.own_words.length) {
      lines.push("- In their own words: " + summary.own_words.map(function (t) { return "\"" + t + "\""; }).join(" / "));
    }
    var screening = summary.screening || {};
    var keys = Object.keys(screening);
    if (keys.length) {
      lines.push("", "Warning-sign questions:");
      keys.forEach(function (k) {
        var item = screening[k] || {};
        lines.push("- " + (item.question || k.replace(/_/g, " ")) + ": " + shown(item.answer));
      });
    }
    var flags = summary.red_flags || [];
    lines.push("", "Warning signs noted: " + (flags.length ? flags.map(function (f) { return String(f).replace(/_/g, " "); }).join(", ") : "none"));
    if (summary.triage_level) lines.push("Triage level: " + summary.triage_level);
    if (summary.advice) lines.push("Suggested urgency: " + summary.advice);
    var related = summary.related_conditions || [];
    if (related.length) {
      lines.push("Conditions the reference article links to symptoms like these: " +
        related.map(function (c) { return c && c.name ? c.name : String(c); }).join(", "));
    }
    var known = ["date", "note", "reported", "own_words", "screening", "red_flags", "triage_level", "advice", "related_conditions"];
    Object.keys(summary).forEach(function (k) {
      if (known.indexOf(k) < 0) lines.push(k.replace(/_/g, " ") + ": " + shown(summary[k]));
    });
    lines.push("", "Backline is not a doctor and cannot diagnose. Please show this to your healthcare provider;",
      "they will make their own assessment.");
    return lines.join("\n");
  }

  function downloadSummary(summary) {
    var blob = new Blob([summaryText(summary) + "\n"], { type: "text/plain;charset=utf-8" });
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = "backline-visit-summary.txt";
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function showBot(message) {
    var wrapper = null;
    if (message.text) {
      wrapper = bubble("bot", message.text);
    }
    if (message.image) {
      wrapper = wrapper || bubble("bot", "");
      var img = document.createElement("img");
      img.src = message.image;
      img.alt = "Image from Backline";
      wrapper.appendChild(img);
    }
    var several = message.custom && typeof message.custom === "object" && message.custom.multiselect;
    if (message.buttons && message.buttons.length && several) {
      wrapper = wrapper || bubble("bot", "");
      wrapper.appendChild(multiChoice(message.buttons));
    } else if (message.buttons && message.buttons.length) {
      wrapper = wrapper || bubble("bot", "");
      var group = document.createElement("div");
      group.className = "choices";
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Quick replies");
      message.buttons.forEach(function (button) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "choice";
        b.textContent = button.title;
        b.addEventListener("click", function () {
          send(button.payload || button.title, button.title, { fromChoice: true });
        });
        group.appendChild(b);
      });
      wrapper.appendChild(group);
    }
    var custom = message.custom;
    if (custom && typeof custom === "object" && custom.visit_summary) {
      var holder = bubble("bot", "Your visit summary is ready to save and bring to your healthcare provider.");
      var download = document.createElement("button");
      download.type = "button";
      download.className = "download";
      download.textContent = "Download visit summary (.txt)";
      download.addEventListener("click", function () { downloadSummary(custom.visit_summary); });
      holder.appendChild(download);
      wrapper = holder;
    }
    scrollToEnd();
    return wrapper;
  }

  /* Choose-all-that-apply: toggles plus a Send button; "None of these" sends at once. The
     chosen payloads go as one message joined with "; " (the server reads each one). */
  function multiChoice(buttons) {
    var group = document.createElement("div");
    group.className = "choices multi";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Choose all that apply");
    var chosen = [];
    var sendButton = document.createElement("button");
    buttons.forEach(function (button) {
      var payload = button.payload || button.title;
      var none = /^none\b/i.test(payload);
      var b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.textContent = button.title;
      if (!none) { b.setAttribute("aria-pressed", "false"); }
      b.addEventListener("click", function () {
        if (none) { send(payload, button.title, { fromChoice: true }); return; }
        var at = chosen.indexOf(button);
        if (at >= 0) { chosen.splice(at, 1); } else { chosen.push(button); }
        b.setAttribute("aria-pressed", at >= 0 ? "false" : "true");
        sendButton.disabled = chosen.length === 0;
      });
      group.appendChild(b);
    });
    sendButton.type = "button";
    sendButton.className = "choice send-choices";
    sendButton.textContent = "Send my answer";
    sendButton.disabled = true;
    sendButton.addEventListener("click", function () {
      if (!chosen.length) { return; }
      var payloads = chosen.map(function (c) { return c.payload || c.title; });
      var titles = chosen.map(function (c) { return c.title; });
      send(payloads.join("; "), titles.join("; "), { fromChoice: true });
    });
    group.appendChild(sendButton);
    return group;
  }

  function notice(text) {
    bubble("system", text);
  }

  function setTyping(on) {
    inFlight += on ? 1 : -1;
    typing.hidden = inFlight <= 0;
  }

  function applyState(state) {
    if (!state) return;
    if (state.emergency_number) {
      emergencyNumber = String(state.emergency_number);
      footnoteNumber.textContent = emergencyNumber;
    }
    if (state.triage_level === "emergency") {
      bannerText.textContent = "call " + emergencyNumber +
        " now or go to the nearest emergency department. Don't wait to see if it gets better.";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    scrollToEnd();   // the banner takes room from the log: keep the latest message in view
  }

  /* The state since the last one seen (`after`): only new messages travel. */
  function fetchState(after) {
    return fetch(BASE + "widget/state/" + encodeURIComponent(sessionId) + "?after=" + (after || 0), {
      headers: { "Accept": "application/json" }
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) {
        if (state && typeof state.seq === "number") stateSeq = state.seq;
        return state;
      })
      .catch(function () { return null; });
  }

  function errorText(response, body) {
    if (response.status === 429) {
      var wait = response.headers.get("Retry-After") || "a few";
      return "You're sending messages quickly. Please wait " + wait + " seconds and try again.";
    }
    var reason = body && body.error ? " (" + body.error + ")" : "";
    return "Sorry, that message didn't go through" + reason + ". Please try again.";
  }

  function post(text) {
    return fetch(WEBHOOK, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ sender: sessionId, message: text, metadata: { channel: "widget" } })
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        // A rate-limited message is still answered (wait time, emergency number, and the
        // safety reply when it names a danger sign): show those messages like any reply.
        if (response.status === 429 && Array.isArray(body) && body.length) return body;
        if (!response.ok) throw new Error(errorText(response, body));
        return Array.isArray(body) ? body : [];
      });
    }, function () {
      throw new Error("Can't reach Backline right now. Check your connection and try again. " +
        "In an emergency call " + emergencyNumber + ".");
    });
  }

  /* Send `text`; show `display` as the user's message (null shows nothing). */
  function send(text, display, options) {
    options = options || {};
    if (display !== null) {
      removeChoices();
      bubble("user", display === undefined ? text : display);
    }
    if (options.fromChoice) input.focus();
    setTyping(true);
    pending = pending.then(function () {
      return post(text).then(function (messages) {
        setTyping(false);
        var firstChoice = null;
        messages.forEach(function (m) {
          var shown = showBot(m);
          if (!firstChoice && shown) firstChoice = shown.querySelector(".choice");
        });
        if (options.fromChoice && firstChoice) firstChoice.focus();
        return fetchState(stateSeq).then(applyState);
      }, function (err) {
        setTyping(false);
        notice(err.message);
      });
    });
    return pending;
  }

  function start() {
    sessionId = newSessionId();
    storeSessionId(sessionId);
    return send("/greet", null);
  }

  function restore(id) {
    sessionId = id;
    return fetchState(0).then(function (state) {
      if (!state || !state.messages || !state.messages.length) {
        return send("/greet", null);
      }
      state.messages.forEach(function (m) {
        if (m.from === "user") {
          removeChoices();   // answered quick replies do not come back, as during the chat
          bubble("user", m.text || "");
        } else if (m.from === "bot") showBot(m);
      });
      // only the latest reply's quick replies stay usable
      var groups = log.querySelectorAll(".choices");
      for (var i = 0; i < groups.length - 1; i++) groups[i].parentNode.removeChild(groups[i]);
      applyState(state);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    input.value = "";
    send(text);
    input.focus();
  });

  summaryButton.addEventListener("click", function () {
    send("/request_summary", "Visit summary");
  });

  restartButton.addEventListener("click", function () {
    removeChoices();
    while (log.firstChild) log.removeChild(log.firstChild);
    banner.hidden = true;
    // the engine answers /restart with the disclaimer; /greet brings back the first choices
    send("/restart", null);
    send("/greet", null).then(function () { input.focus(); });
  });

  var existing = storedSessionId();
  if (existing && /^[0-9a-zA-Z_-]{8,64}$/.test(existing)) {
    restore(existing);
  } else {
    start();
  }
})();
