/* Adds the Backline chat to any page with one tag:
 *   <script src="http://127.0.0.1:5005/widget/embed.js"></script>
 * A launcher button opens the widget in an iframe served by the same Backline server, so the
 * host page needs no styles, no CORS and no inline code. Styles are set through the DOM
 * (allowed under a strict CSP). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__backlineEmbedded) return;
  window.__backlineEmbedded = true;
  // The frame next to this script (<base>/widget/frame): works under a reverse-proxy sub-path.
  var frameUrl = new URL("frame", new URL(script.src, window.location.href)).href;

  function style(el, props) {
    Object.keys(props).forEach(function (k) { el.style[k] = props[k]; });
  }

  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.id = "backline-chat-launcher";
  launcher.textContent = "Chat about your back";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "backline-chat-frame");
  style(launcher, {
    position: "fixed", right: "16px", bottom: "16px", zIndex: "2147483000",
    background: "#0b57a4", color: "#ffffff", border: "2px solid #0b57a4",
    borderRadius: "999px", padding: "10px 18px", font: "600 16px system-ui, sans-serif",
    cursor: "pointer", boxShadow: "0 2px 8px rgba(0,0,0,0.25)"
  });

  var frame = document.createElement("iframe");
  frame.id = "backline-chat-frame";
  frame.title = "Backline chat";
  frame.src = frameUrl;
  frame.hidden = true;
  style(frame, {
    position: "fixed", right: "16px", bottom: "72px", zIndex: "2147483000",
    width: "min(400px, calc(100vw - 32px))", height: "min(620px, calc(100vh - 96px))",
    border: "1px solid #c9d0d8", borderRadius: "12px", background: "#ffffff",
    boxShadow: "0 4px 18px rgba(0,0,0,0.25)"
  });

  function setOpen(open) {
    frame.hidden = !open;
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    launcher.textContent = open ? "Close chat" : "Chat about your back";
    if (open) frame.focus();
  }

  launcher.addEventListener("click", function () { setOpen(frame.hidden); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !frame.hidden) {
      setOpen(false);
      launcher.focus();
    }
  });

  function mount() {
    document.body.appendChild(frame);
    document.body.appendChild(launcher);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
