/*
 * The demo's imitation of Outlook's reading view: a message list, a reading pane, a ribbon with
 * the add-in's button, and the REAL task pane in an iframe. It plays Outlook's part for the
 * simulated Office host (office-sim.js) inside the pane, over same-origin postMessage.
 */
(function () {
  "use strict";

  var SOURCE_HOST = "demo-outlook";
  var SOURCE_PANE = "office-sim";

  var CLIENTS = {
    web: { hostName: "OutlookWebApp", platform: "OfficeOnline", sets: { Mailbox: "1.13", IdentityAPI: "1.3" }, restIds: false },
    windows: {
      hostName: "Outlook",
      platform: "PC",
      sets: { Mailbox: "1.14", IdentityAPI: "1.3", NestedAppAuth: "1.1" },
      restIds: false,
    },
    ios: { hostName: "OutlookIOS", platform: "iOS", sets: { Mailbox: "1.5", IdentityAPI: "1.3" }, restIds: true },
  };

  var body = document.body;
  var urls = {
    messages: body.getAttribute("data-messages-url"),
    token: body.getAttribute("data-token-url"),
    pane: body.getAttribute("data-pane-url"),
  };
  var user = { emailAddress: body.getAttribute("data-user"), displayName: body.getAttribute("data-user-name") };

  var state = { messages: [], selected: null, client: "web", toastTimer: null };

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function toRest(id) {
    return String(id).replace(/\//g, "-").replace(/\+/g, "_");
  }

  function formatDate(iso, long) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    var options = long ? { dateStyle: "full", timeStyle: "short" } : { month: "short", day: "numeric" };
    return new Intl.DateTimeFormat(undefined, options).format(date);
  }

  function toast(text) {
    var node = $("toast");
    node.textContent = text;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(function () { node.textContent = ""; }, 8000);
  }

  // ---- Message list and reading pane ------------------------------------------------------

  function renderList() {
    var list = $("message-list");
    clear(list);
    state.messages.forEach(function (message) {
      var row = el("li");
      var button = el("button", "message-row");
      button.type = "button";
      button.setAttribute("data-id", message.item_id);
      button.appendChild(el("span", "row-from", message.from.name || message.from.address));
      button.appendChild(el("span", "row-date", formatDate(message.received_at, false)));
      button.appendChild(el("span", "row-subject", message.subject));
      button.appendChild(el("span", "row-preview", message.preview));
      button.addEventListener("click", function () { select(message.item_id); });
      row.appendChild(button);
      list.appendChild(row);
    });
    $("list-status").textContent = state.messages.length + (state.messages.length === 1 ? " message" : " messages");
  }

  function renderReading(message) {
    $("reading-empty").hidden = Boolean(message);
    $("reading-message").hidden = !message;
    if (!message) return;
    $("reading-subject").textContent = message.subject;
    $("reading-from-name").textContent = message.from.name || message.from.address;
    $("reading-from-address").textContent = message.from.name ? "<" + message.from.address + ">" : "";
    $("reading-date").textContent = formatDate(message.received_at, true);
    $("reading-shared").textContent = message.shared_owner ? "In the shared mailbox " + message.shared_owner : "";
    $("reading-shared").hidden = !message.shared_owner;
    var text = $("reading-body");
    clear(text);
    String(message.preview).split(/\n{2,}/).forEach(function (paragraph) { text.appendChild(el("p", null, paragraph)); });
  }

  function select(id) {
    state.selected = state.messages.filter(function (m) { return m.item_id === id; })[0] || null;
    Array.prototype.forEach.call(document.querySelectorAll(".message-row"), function (row) {
      if (row.getAttribute("data-id") === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    renderReading(state.selected);
    $("report-button").disabled = !state.selected;
    tellPane({ type: "item", item: itemFor(state.selected) });
  }

  function loadMessages() {
    return fetch(urls.messages, { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("messages answered " + response.status);
        return response.json();
      })
      .then(function (data) {
        state.messages = data.messages || [];
        renderList();
      })
      .catch(function () {
        $("list-status").textContent = "The demo mailbox could not be loaded. Reload the page to try again.";
      });
  }

  // ---- The simulated Office host's side ---------------------------------------------------

  function itemFor(message) {
    if (!message) return null;
    var client = CLIENTS[state.client];
    return {
      itemId: client.restIds ? toRest(message.item_id) : message.item_id,
      subject: message.subject,
      from: { displayName: message.from.name, emailAddress: message.from.address },
      dateTimeCreated: message.received_at,
      internetMessageId: message.internet_message_id || null,
      sharedOwner: message.shared_owner || null,
    };
  }

  function frame() {
    return $("taskpane-frame");
  }

  function tellPane(message) {
    var pane = frame().contentWindow;
    if ($("taskpane").hidden || !pane) return;
    message.source = SOURCE_HOST;
    pane.postMessage(message, window.location.origin);
  }

  function sendContext() {
    var client = CLIENTS[state.client];
    tellPane({
      type: "context",
      context: {
        user: user,
        hostName: client.hostName,
        platform: client.platform,
        sets: client.sets,
        tokenUrl: urls.token,
        item: itemFor(state.selected),
      },
    });
  }

  function showReply(html) {
    var parsed = new DOMParser().parseFromString(String(html), "text/html");
    var message = state.selected;
    $("reply-to").textContent = message ? message.from.address : "";
    $("reply-subject").textContent = message ? "RE: " + message.subject : "";
    $("reply-body").value = (parsed.body.textContent || "").trim();
    $("reply-dialog").showModal();
    $("reply-body").focus();
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame().contentWindow || event.origin !== window.location.origin) return;
    var data = event.data || {};
    if (data.source !== SOURCE_PANE) return;
    if (data.type === "hello") sendContext();
    else if (data.type === "reply") showReply(data.htmlBody);
  });

  // ---- The task pane ----------------------------------------------------------------------

  function openPane() {
    var pane = $("taskpane");
    if (pane.hidden) {
      pane.hidden = false;
      frame().src = urls.pane;
      $("report-button").setAttribute("aria-expanded", "true");
    }
    frame().focus();
  }

  function closePane() {
    $("taskpane").hidden = true;
    frame().removeAttribute("src");
    $("report-button").setAttribute("aria-expanded", "false");
    $("report-button").focus();
  }

  function chooseClient(value) {
    state.client = Object.prototype.hasOwnProperty.call(CLIENTS, value) ? value : "web";
    $("client").value = state.client;
    var url = new URL(window.location.href);
    url.searchParams.set("client", state.client);
    window.history.replaceState(null, "", url.pathname + url.search);
    if (!$("taskpane").hidden) frame().src = urls.pane; // a new client means a new pane
  }

  $("report-button").addEventListener("click", openPane);
  $("taskpane-close").addEventListener("click", closePane);
  $("client").addEventListener("change", function (event) { chooseClient(event.target.value); });
  $("reply-send").addEventListener("click", function () {
    $("reply-dialog").close();
    toast("This is the demo, so the reply was not sent.");
  });
  $("reply-discard").addEventListener("click", function () {
    $("reply-dialog").close();
    toast("Reply discarded.");
  });

  chooseClient(new URL(window.location.href).searchParams.get("client") || "web");
  loadMessages();
})();
