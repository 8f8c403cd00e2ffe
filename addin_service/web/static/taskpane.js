/*
 * Report harassment: the Outlook task pane.
 *
 * Plain script, no framework. Every value that comes from a message, from Outlook or from the
 * server is written with textContent or as an attribute, never parsed as HTML.
 */
(function () {
  "use strict";

  performance.mark("pane-start");

  var REQUEST_TIMEOUT_MS = 90000;
  var READY_TIMEOUT_MS = 20000;
  var SHARED_LOOKUP_TIMEOUT_MS = 5000;
  // C0 control characters other than TAB, LF and CR: invisible, and refused by the service.
  var CONTROL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

  var NO_MESSAGE = "Select a message in Outlook, then choose Report harassment again.";

  var configUrl = document.body.getAttribute("data-config-url");
  var reportsUrl = document.body.getAttribute("data-reports-url");

  var state = {
    config: null,
    key: null, // Idempotency-Key: one per message, so a retry never files twice
    lastBody: null, // the request body last sent with that key
    target: null, // { item, ref, owner }: the message this form reports, bound when it opened
    unanswered: {}, // keys whose request may have been filed though no answer came back
    busy: false,
    view: "loading",
    itemChanged: false,
    interactiveMarked: false,
    watching: false,
    msalApp: null,
  };

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setText(id, text) {
    $(id).textContent = text === undefined || text === null ? "" : String(text);
  }

  function focusHeading(id) {
    var heading = $(id);
    heading.focus();
    if (typeof heading.scrollIntoView === "function") heading.scrollIntoView({ block: "start" });
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function withTimeout(promise, ms, what) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(new Error(what + " timed out")); }, ms);
      promise.then(
        function (value) { clearTimeout(timer); resolve(value); },
        function (error) { clearTimeout(timer); reject(error); }
      );
    });
  }

  function focusForm() {
    focusHeading("message-heading");
  }

  // "aria-describedby" with only the lines that are shown, so a screen reader reads no stale text.
  function describeBy(id, lineIds) {
    var shown = lineIds.filter(function (lineId) { return !$(lineId).hidden; });
    $(id).setAttribute("aria-describedby", shown.join(" "));
  }

  function duration(seconds) {
    var s = Math.max(1, Math.round(Number(seconds) || 0));
    if (s < 90) return "about " + s + (s === 1 ? " second" : " seconds");
    var m = Math.round(s / 60);
    return "about " + m + " minutes";
  }

  // ---- Office -------------------------------------------------------------------------------

  function isSet(name, version) {
    try {
      return Boolean(Office.context.requirements && Office.context.requirements.isSetSupported(name, version));
    } catch (e) {
      return false;
    }
  }

  function mailbox() {
    return Office.context.mailbox;
  }

  function officeReady() {
    if (typeof Office === "undefined" || typeof Office.onReady !== "function") {
      return Promise.reject(new Error("Office.js is not loaded"));
    }
    return withTimeout(Office.onReady(), READY_TIMEOUT_MS, "Office.onReady");
  }

  function isMobile() {
    var diagnostics = mailbox().diagnostics || {};
    if (diagnostics.hostName === "OutlookIOS" || diagnostics.hostName === "OutlookAndroid") return true;
    var types = Office.PlatformType || {};
    var platform = Office.context.platform;
    return platform !== undefined && (platform === types.iOS || platform === types.Android);
  }

  // Outlook mobile gives REST-format ids; desktop and web give EWS ids. Send the EWS form when
  // Outlook can convert, and otherwise say which form it is so the service converts.
  function itemReference(item) {
    var id = item.itemId;
    if (!isMobile()) return { id: id, format: "ews" };
    if (isSet("Mailbox", "1.3") && typeof mailbox().convertToEwsId === "function") {
      return { id: mailbox().convertToEwsId(id, Office.MailboxEnums.RestVersion.v2_0), format: "ews" };
    }
    return { id: id, format: "rest" };
  }

  // The owner of a shared folder or shared mailbox; null for the reporter's own mailbox.
  function sharedOwner(item) {
    if (!isSet("Mailbox", "1.8") || typeof item.getSharedPropertiesAsync !== "function") {
      return Promise.resolve(null);
    }
    var lookup = new Promise(function (resolve) {
      try {
        item.getSharedPropertiesAsync(function (result) {
          var ok = result && result.status === Office.AsyncResultStatus.Succeeded && result.value;
          var owner = ok && result.value.owner ? String(result.value.owner).trim().toLowerCase() : "";
          var me = String((mailbox().userProfile || {}).emailAddress || "").toLowerCase();
          resolve(owner && owner !== me ? owner : null);
        });
      } catch (e) {
        resolve(null);
      }
    });
    return withTimeout(lookup, SHARED_LOOKUP_TIMEOUT_MS, "getSharedPropertiesAsync").catch(function () { return null; });
  }

  // ---- Sign-in ------------------------------------------------------------------------------

  function SignInError(code, message) {
    this.name = "SignInError";
    this.code = code;
    this.message = message || "sign-in failed";
  }

  function loadScript(url, integrity) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = url;
      if (integrity) script.integrity = integrity;
      script.onload = function () { resolve(); };
      script.onerror = function () { reject(new Error("could not load " + url)); };
      document.head.appendChild(script);
    });
  }

  // Nested app authentication: MSAL.js asks Outlook for a token for this service's API.
  function nestedAppToken(interactive) {
    var config = state.config;
    var ready = state.msalApp
      ? Promise.resolve(state.msalApp)
      : loadScript(config.msal.url, config.msal.integrity).then(function () {
          return window.msal.createNestablePublicClientApplication({
            auth: { clientId: config.client_id, authority: config.authority },
          });
        });
    return ready.then(function (app) {
      state.msalApp = app;
      var request = { scopes: [config.api_scope] };
      var popup = function () { return app.acquireTokenPopup(request); };
      var attempt = interactive ? popup() : app.acquireTokenSilent(request).catch(popup);
      return attempt.then(function (result) { return result.accessToken; });
    });
  }

  function officeToken() {
    if (!Office.auth || typeof Office.auth.getAccessToken !== "function") {
      return Promise.reject(new SignInError("unsupported", "Office.auth.getAccessToken is not available"));
    }
    return Office.auth.getAccessToken({ allowSignInPrompt: true, allowConsentPrompt: true });
  }

  function accessToken(interactive) {
    var useNaa = state.config.msal && isSet("NestedAppAuth", "1.1");
    var token = useNaa ? nestedAppToken(interactive).catch(officeToken) : officeToken();
    return token.then(
      function (value) {
        if (typeof value !== "string" || !value) throw new SignInError("empty");
        return value;
      },
      function (error) {
        throw new SignInError(error && error.code ? String(error.code) : "failed", error && error.message);
      }
    );
  }

  // ---- Views --------------------------------------------------------------------------------

  function setStatus(text, busy) {
    var status = $("status");
    status.classList.toggle("is-busy", Boolean(busy));
    setText("status-text", text);
  }

  function setView(view) {
    state.view = view;
    show($("unavailable"), view === "unavailable");
    show($("report-form"), view === "form");
    show($("receipt"), view === "receipt");
    if (view !== "form") show($("error"), false);
  }

  function unavailable(text, canRetry, keepFocus) {
    setStatus("", false);
    setText("unavailable-text", text);
    show($("unavailable-retry"), Boolean(canRetry));
    setView("unavailable");
    if (!keepFocus) focusHeading("unavailable-heading");
  }

  function applyConfig(config) {
    var options = $("category-options");
    clear(options);
    config.categories.forEach(function (category) {
      var row = el("div", "choice");
      var input = document.createElement("input");
      input.type = "radio";
      input.name = "category";
      input.id = "category-" + category.value;
      input.value = category.value;
      var label = el("label", null, category.label);
      label.htmlFor = input.id;
      row.appendChild(input);
      row.appendChild(label);
      options.appendChild(row);
    });
    $("note").maxLength = config.note_max_length;
    var emergency = (config.support && config.support.emergency_number) || "emergency services";
    Array.prototype.forEach.call(document.querySelectorAll(".emergency-number"), function (node) {
      clear(node);
      // Inside the form a link would add a tab stop between the two checkboxes.
      var dialable = /^\d{2,6}$/.test(emergency) && !node.closest("form");
      node.appendChild(dialable ? phoneLink(emergency) : document.createTextNode(emergency));
    });
    setText("reply-text", config.reply_text);
  }

  function showItem(item) {
    var from = item.from || item.sender || {};
    setText("msg-from-name", from.displayName || from.emailAddress || "Unknown sender");
    setText("msg-from-address", from.displayName && from.emailAddress ? "<" + from.emailAddress + ">" : "");
    setText("msg-subject", item.subject || "(no subject)");
    setText("msg-date", formatDate(item.dateTimeCreated));
  }

  function formatDate(value) {
    var date = value instanceof Date ? value : new Date(value);
    if (!value || isNaN(date.getTime())) return "Unknown";
    try {
      var locale = Office.context.displayLanguage || undefined;
      return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(date);
    } catch (e) {
      return date.toString();
    }
  }

  function resetForm() {
    $("report-form").reset();
    clearFieldErrors();
    showNoteLimit();
    show($("form-item-changed"), false);
    show($("error"), false);
  }

  // The form reports the message it was opened for, whatever is selected when it is sent.
  function bindItem(item) {
    return { item: item, ref: itemReference(item), owner: sharedOwner(item) };
  }

  function showForm(moveFocus) {
    var item = mailbox().item;
    state.itemChanged = false;
    if (!item || !item.itemId) {
      unavailable(NO_MESSAGE, false);
      return;
    }
    state.target = bindItem(item);
    state.key = uuid();
    state.lastBody = null;
    resetForm();
    showItem(item);
    setStatus("", false);
    setView("form");
    if (moveFocus) focusForm();
    if (!state.interactiveMarked) {
      state.interactiveMarked = true;
      performance.mark("pane-interactive");
    }
  }

  function showNoteLimit() {
    var note = $("note");
    var atLimit = note.maxLength > 0 && note.value.length >= note.maxLength;
    var limit = new Intl.NumberFormat("en-US").format(note.maxLength);
    var text = atLimit ? "Your note is at the " + limit + "-character limit; anything longer was not added." : "";
    // Rewriting the same words would make a screen reader repeat them at every key press.
    if ($("note-limit").textContent !== text) setText("note-limit", text);
  }

  function clearFieldErrors() {
    ["category", "note"].forEach(function (field) {
      show($(field + "-error"), false);
      setText(field + "-error", "");
    });
    $("category-group").removeAttribute("aria-invalid");
    $("note").removeAttribute("aria-invalid");
  }

  function fieldError(field, message) {
    setText(field + "-error", message);
    show($(field + "-error"), true);
    (field === "category" ? $("category-group") : $("note")).setAttribute("aria-invalid", "true");
  }

  function selectedCategory() {
    var checked = document.querySelector('input[name="category"]:checked');
    return checked ? checked.value : null;
  }

  // ---- Receipt ------------------------------------------------------------------------------

  // The phone number a configured text starts with: "+1 555 0199 (24/7)" gives "+1 555 0199".
  // A bracketed group belongs to it only when more digits follow, as in "(555) 123-4567".
  var LEADING_PHONE = /^\+?(?:[0-9]|\([0-9]+\)(?=[ .\-]*[0-9]))(?:[0-9 .\-]|\([0-9]+\)(?=[ .\-]*[0-9]))*/;

  function leadingPhone(text) {
    var found = LEADING_PHONE.exec(text);
    return found ? found[0].replace(/[ .\-]+$/, "") : "";
  }

  // "+44 (0)20 …": the bracketed 0 is dialled only from inside the country.
  function dialString(number) {
    var international = number.charAt(0) === "+";
    var digits = (international ? number.replace(/\(0\)/g, "") : number).replace(/[^0-9]/g, "");
    return (international ? "+" : "") + digits;
  }

  function phoneLink(phone) {
    var text = String(phone).trim();
    var number = leadingPhone(text);
    if (!number.replace(/[^0-9]/g, "")) return el("span", null, text);
    var link = el("a", null, number);
    link.href = "tel:" + dialString(number);
    var rest = text.slice(number.length);
    if (!rest) return link;
    var whole = el("span");
    whole.appendChild(link);
    whole.appendChild(document.createTextNode(rest));
    return whole;
  }

  function webLink(url) {
    var parsed;
    try {
      parsed = new URL(url);
    } catch (e) {
      return null;
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return null;
    var link = el("a", null, parsed.host);
    link.href = parsed.href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }

  function contactItem(contact, description) {
    if (!contact || (!contact.phone && !contact.url)) return null;
    var item = el("li");
    item.appendChild(el("strong", null, contact.name));
    if (description) item.appendChild(el("span", "contact-note", description));
    var ways = el("span", "contact-ways");
    if (contact.phone) ways.appendChild(phoneLink(contact.phone));
    var link = contact.url ? webLink(contact.url) : null;
    if (link) {
      if (contact.phone) ways.appendChild(document.createTextNode(" · "));
      ways.appendChild(link);
    }
    item.appendChild(ways);
    return item;
  }

  function fillList(list, items) {
    clear(list);
    items.forEach(function (item) { if (item) list.appendChild(item); });
    show(list, list.children.length > 0);
  }

  var STATUS_WORDS = {
    queued: "being told now",
    sent: "told",
    failed: "being told (sending again shortly)",
    dead: "could not be reached by email. Please contact them yourself.",
  };

  function toldItems(notifications) {
    var roles = state.config.roles || {};
    if (!notifications || !notifications.length) {
      return [el("li", null, "The people who handle these reports are being told.")];
    }
    return notifications.map(function (n) {
      var who = roles[n.role] || String(n.role || "Someone").replace(/-/g, " ");
      var item = el("li");
      item.appendChild(el("strong", null, who));
      item.appendChild(document.createTextNode(": " + (STATUS_WORDS[n.status] || "being told")));
      return item;
    });
  }

  // What this request carried that the earlier report, answered again instead, does not hold.
  function notAdded(report, replayed, sent) {
    if (!replayed || !sent) return [];
    var missing = [];
    // After an attempt under this key went unanswered, the replay may be that very request.
    if (sent.body.note.trim() && !state.unanswered[sent.key]) missing.push("your note");
    if (sent.body.feels_unsafe && !report.urgent) missing.push("\u201cI feel unsafe\u201d");
    if (sent.body.include_related && !report.related) missing.push("saving your other messages from this sender");
    return missing;
  }

  function notAddedText(missing) {
    var contact = securityContact();
    var who = contact ? "the security team" + contact : "the people who handle these reports";
    return "What you added this time (" + missing.join(" and ") + ") was not added to the earlier report. " +
      "To add it, contact " + who + ".";
  }

  function showReceipt(report, replayed, sent) {
    var support = report.support || state.config.support || {};
    var missing = notAdded(report, replayed, sent);
    // Whoever ticks "I feel unsafe" now sees the urgent help first, even on an earlier report.
    var urgent = Boolean(report.urgent) || Boolean(replayed && sent && sent.body.feels_unsafe);
    setText("case-id", report.case_id);
    show($("receipt-replayed"), replayed);
    setText("receipt-not-added", missing.length ? notAddedText(missing) : "");
    show($("receipt-not-added"), missing.length > 0);
    show($("receipt-urgent"), Boolean(report.urgent));
    describeBy("receipt-heading", ["receipt-case", "receipt-replayed", "receipt-not-added", "receipt-urgent"]);

    fillList($("told-list"), toldItems(report.notifications));
    fillList($("guidance-list"), (support.guidance || []).map(function (line) { return el("li", null, line); }));

    var dayAndNight = [
      contactItem(support.support_24x7, "Open 24 hours"),
      contactItem(support.incident_response, null),
    ];
    var eap = contactItem(support.eap, "Confidential support for you");
    // "I feel unsafe": the 24/7 contacts and the emergency line come first.
    show($("emergency-first"), urgent);
    fillList($("help-first-list"), urgent ? dayAndNight : []);
    show($("help-first"), $("help-first-list").children.length > 0);
    fillList($("help-list"), urgent ? [eap] : [eap].concat(dayAndNight));
    show($("emergency-last"), !urgent);

    showReplyForSelection();
    setStatus("", false);
    setView("receipt");
    focusHeading("receipt-heading");
  }

  function boundItemSelected() {
    var item = mailbox().item;
    return Boolean(item && state.target && item.itemId === state.target.item.itemId);
  }

  // Outlook's reply form answers the selected message, so it is offered only while that is the
  // reported one.
  function showReplyForSelection() {
    var item = mailbox().item;
    var other = Boolean(item) && !boundItemSelected();
    var canReply = Boolean(item) && !other && typeof item.displayReplyForm === "function";
    show($("reply"), !other);
    show($("reply-button").parentElement, canReply);
    show($("reply-hint"), canReply);
    show($("reply-unavailable"), !canReply);
    show($("item-changed"), other);
  }

  function openReply() {
    var item = mailbox().item;
    if (!boundItemSelected()) return;
    try {
      item.displayReplyForm({ htmlBody: "<p>" + escapeHtml(state.config.reply_text) + "</p>" });
    } catch (e) {
      show($("reply-button").parentElement, false);
      show($("reply-hint"), false);
      show($("reply-unavailable"), true);
    }
  }

  // ---- Errors -------------------------------------------------------------------------------

  // " (name, phone)" of the security team's line, or "" when none is configured.
  function securityContact() {
    var support = state.config.support || {};
    var contact = support.incident_response && support.incident_response.phone ? support.incident_response : support.support_24x7;
    if (!contact || !contact.phone) return "";
    return " (" + contact.name + ", " + String(contact.phone).replace(/ /g, "\u00a0") + ")";
  }

  function explain(kind, status, problem) {
    var wait = problem.retry_after ? "Try again in " + duration(problem.retry_after) + "." : "Try again in a minute.";
    switch (kind) {
      case "offline":
        return {
          title: "You seem to be offline",
          text: "Your report could not be sent.",
          next: "Check your connection, then try again. However many times you try, the report is filed only once.",
          retry: true,
        };
      case "unreachable":
        return {
          title: "The reporting service could not be reached",
          text: "Your report may not have been sent.",
          next: "Check your connection, then try again. However many times you try, the report is filed only once.",
          retry: true,
        };
      case "uncertain":
        return {
          title: "We could not tell whether your report was filed",
          text: "The connection to the reporting service failed before it answered.",
          next: "Trying again is safe: the report is filed only once.",
          retry: true,
        };
      case "timeout":
        return {
          title: "The reporting service is taking too long",
          text: "Your report may or may not have been filed.",
          next: "Trying again is safe: the report is filed only once.",
          retry: true,
        };
      case "signin":
        return {
          title: "We could not sign you in",
          text: "Outlook could not confirm who you are, so nothing was sent.",
          next: "Sign in again to send your report.",
          signin: true,
        };
    }
    switch (status) {
      case 400:
        return { title: "Some details need a change", text: problem.detail || "Please check the form." };
      case 401:
        return {
          title: "Please sign in again",
          text: "Your sign-in has ended or could not be checked, so nothing was filed yet.",
          next: "Sign in again and your report is sent straight away.",
          signin: true,
        };
      case 403:
        return {
          title: "You cannot report from this mailbox",
          text: "You can report messages only from your own mailbox or one you have been given access to. Nothing was filed.",
          next: "Ask the mailbox owner to report it, or contact the security team" + securityContact() + ".",
          final: true,
        };
      case 404:
        return {
          title: "This message is no longer there",
          text: "It may have been moved or deleted, so it could not be saved. Nothing was filed.",
          next: "If you moved it, open it in its new folder and report it from there. If you deleted it, look in Deleted Items.",
          final: true,
        };
      case 413:
        return {
          title: "This message is too large to file here",
          text: "Nothing was filed. Please keep the message and do not delete it.",
          next: "Contact the security team" + securityContact() + " so they can save it another way.",
          final: true,
        };
      case 422:
        return {
          title: "Please send your report again",
          text: "Nothing was lost.",
          next: "Choose Try again to send it as it is now.",
          retry: true,
        };
      case 429:
        return {
          title: "Please wait a moment",
          text: "You have sent several reports in a short time.",
          next: wait,
          retry: true,
        };
      case 502:
      case 503:
      case 504:
        return {
          title: /exchange/.test(problem.type || "") ? "Exchange is busy right now" : "The reporting service is busy right now",
          text: "The message could not be saved yet. Nothing is lost.",
          next: wait,
          retry: true,
        };
    }
    return {
      title: "Something went wrong",
      text: "Your report may not have been filed.",
      next: "Please try again. If it keeps happening, contact your IT help desk" +
        (problem.request_id ? " and quote the reference below." : "."),
      retry: true,
    };
  }

  function showProblem(kind, status, problem) {
    problem = problem || {};
    var info = explain(kind, status, problem);
    if (status === 400 && problem.errors) {
      if (problem.errors.category) fieldError("category", problem.errors.category.join(" "));
      if (problem.errors.note) fieldError("note", problem.errors.note.join(" "));
    }
    if (status === 422) forgetKey();
    setText("error-heading", info.title);
    setText("error-text", info.text);
    setText("error-next", info.next || "");
    show($("error-next"), Boolean(info.next));
    setText("error-ref", problem.request_id ? "Reference: " + problem.request_id : "");
    show($("error-ref"), Boolean(problem.request_id));
    show($("error-retry"), Boolean(info.retry));
    show($("error-signin"), Boolean(info.signin));
    setStatus("", false);
    setView(info.final ? "error" : "form");
    show($("error"), true);
    focusHeading("error-heading");
  }

  // ---- Filing -------------------------------------------------------------------------------

  // The service refused this key for this body: the next send must take a key of its own.
  function forgetKey() {
    state.key = uuid();
    state.lastBody = null;
  }

  function setBusy(busy) {
    state.busy = busy;
    // What is being filed cannot change on screen meanwhile: the edit would not be in the report.
    $("note").readOnly = busy;
    $("submit").setAttribute("aria-disabled", busy ? "true" : "false");
    $("report-form").setAttribute("aria-busy", busy ? "true" : "false");
    if (busy) setStatus("Filing your report. This can take a few seconds.", true);
  }

  function buildRequest(category) {
    var target = state.target;
    return target.owner.then(function (owner) {
      var body = {
        item_id: target.ref.id,
        id_format: target.ref.format,
        category: category,
        note: $("note").value.replace(CONTROL_CHARS, ""),
        feels_unsafe: $("feels-unsafe").checked,
        include_related: $("include-related").checked,
      };
      if (owner) body.mailbox = owner;
      var json = JSON.stringify(body);
      // The same key must never carry a different request: a changed form gets a new key.
      if (state.lastBody !== null && state.lastBody !== json) state.key = uuid();
      state.lastBody = json;
      return { json: json, key: state.key, body: body };
    });
  }

  function post(request, token) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS) : null;
    return fetch(reportsUrl, {
      method: "POST",
      credentials: "omit",
      cache: "no-store",
      headers: {
        Accept: "application/json, application/problem+json",
        Authorization: "Bearer " + token,
        "Content-Type": "application/json",
        "Idempotency-Key": request.key,
      },
      body: request.json,
      signal: controller ? controller.signal : undefined,
    }).finally(function () { if (timer) clearTimeout(timer); });
  }

  // Retry-After in its seconds form; the date form is rare and "in a minute" covers it.
  function retryAfterHeader(response) {
    var value = response.headers.get("Retry-After");
    return value && /^\s*\d+\s*$/.test(value) ? Number(value) : null;
  }

  // A proxy's 502 or 504 (not this service's own problem answer), or a 500, may come after the
  // report was filed; a proxy's 503 means the request found no server.
  function uncertainAnswer(status, problem) {
    return status === 500 || ((status === 502 || status === 504) && problem.status !== status);
  }

  function answered(request, response) {
    return response.json().catch(function () { return null; }).then(function (body) {
      if (response.ok && body && body.case_id) return showReceipt(body, response.status === 200, request);
      var problem = body && typeof body === "object" ? body : {};
      if (!problem.retry_after && retryAfterHeader(response)) problem.retry_after = retryAfterHeader(response);
      if (!uncertainAnswer(response.status, problem)) return showProblem(null, response.status, problem);
      state.unanswered[request.key] = true;
      return showProblem(response.status === 500 ? null : "uncertain", response.status, problem);
    });
  }

  function unanswered(request, error) {
    state.unanswered[request.key] = true;
    if (error && error.name === "AbortError") return showProblem("timeout", 0, null);
    return showProblem(navigator.onLine === false ? "offline" : "unreachable", 0, null);
  }

  function send(request, interactive) {
    show($("error"), false);
    setBusy(true);
    return accessToken(interactive)
      .then(
        function (token) {
          return post(request, token).then(
            function (response) { return answered(request, response); },
            function (error) { return unanswered(request, error); }
          );
        },
        function () {
          // Without a network, signing in fails too; say what the reporter can fix.
          return showProblem(navigator.onLine === false ? "offline" : "signin", 0, null);
        }
      )
      .finally(function () {
        setBusy(false);
        if (state.itemChanged) onItemChanged();
      });
  }

  // Sends the form as it is now: "Try again" and "Sign in again" too, so edits made after an
  // error are never dropped. An unchanged form keeps its key, so it is still filed only once.
  function submit(interactive) {
    if (state.busy) return;
    clearFieldErrors();
    var category = selectedCategory();
    if (!category) {
      fieldError("category", "Choose what this message is about.");
      document.querySelector('input[name="category"]').focus();
      return;
    }
    setBusy(true);
    buildRequest(category).then(function (request) { return send(request, interactive); }, function () {
      setBusy(false);
      showProblem(null, 0, null);
    });
  }

  function onSubmit(event) {
    event.preventDefault();
    submit(false);
  }

  // ---- A pinned pane follows the selection --------------------------------------------------

  // An error shown or anything typed or ticked: a report the reporter would lose by a reset.
  function formHoldsReport() {
    return !$("error").hidden || $("note").value.trim() !== "" ||
      $("feels-unsafe").checked || $("include-related").checked;
  }

  function showSelectionNotice() {
    var moved = !boundItemSelected();
    var text = moved
      ? "You selected another message. This report is still for the message shown above, and it has not been filed yet."
      : "";
    show($("form-item-changed"), moved);
    show($("report-selected"), moved && Boolean(mailbox().item));
    setText("form-item-changed-text", text);
    setStatus(text, false);
  }

  // Never moves focus: that would take it away from Outlook, where the reporter is working.
  function onItemChanged() {
    if (state.busy) {
      state.itemChanged = true;
      return;
    }
    state.itemChanged = false;
    if (state.view === "receipt") return showReplyForSelection();
    if (state.view === "form" && (boundItemSelected() || formHoldsReport())) return showSelectionNotice();
    var item = mailbox().item;
    if (!item || !item.itemId) return unavailable(NO_MESSAGE, false, true);
    // After "This message is no longer there" the reporter opens it where it went: keep what they wrote.
    var kept = state.view === "error" ? formValues() : null;
    showForm(false);
    if (kept) restoreFormValues(kept);
  }

  function formValues() {
    return {
      category: selectedCategory(),
      note: $("note").value,
      unsafe: $("feels-unsafe").checked,
      related: $("include-related").checked,
    };
  }

  function restoreFormValues(values) {
    var category = values.category && document.getElementById("category-" + values.category);
    if (category) category.checked = true;
    $("note").value = values.note;
    $("feels-unsafe").checked = values.unsafe;
    $("include-related").checked = values.related;
    showNoteLimit();
  }

  function watchSelection() {
    var box = mailbox();
    if (!isSet("Mailbox", "1.5") || typeof box.addHandlerAsync !== "function") return;
    box.addHandlerAsync(Office.EventType.ItemChanged, onItemChanged);
  }

  // ---- Start --------------------------------------------------------------------------------

  function loadConfig() {
    return fetch(configUrl, { credentials: "omit", headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) throw new Error("pane-config answered " + response.status);
      return response.json();
    });
  }

  // moveFocus: after the reporter's own "Try again", not when the pane first opens.
  function start(moveFocus) {
    setStatus("Getting ready…", true);
    var config = loadConfig();
    var ready = officeReady();
    return ready.then(
      function (info) {
        return config.then(
          function (loaded) {
            state.config = loaded;
            if (!info || info.host !== Office.HostType.Outlook || !Office.context.mailbox) {
              unavailable("Open this pane from a message in Outlook.", false);
              return;
            }
            applyConfig(loaded);
            if (!state.watching) {
              state.watching = true;
              watchSelection();
            }
            showForm(Boolean(moveFocus));
          },
          function () {
            unavailable("The reporting service could not be reached. Check your connection, then try again.", true);
          }
        );
      },
      function () {
        config.catch(function () { return null; });
        unavailable("Outlook did not finish opening this pane. Close the pane and open it again.", false);
      }
    );
  }

  $("report-form").addEventListener("submit", onSubmit);
  $("report-form").addEventListener("click", function (event) {
    // A box ticked while the report is being filed would not be in it.
    if (state.busy && event.target instanceof HTMLInputElement) event.preventDefault();
  });
  $("note").addEventListener("input", showNoteLimit);
  $("error-retry").addEventListener("click", function () { submit(false); });
  $("error-signin").addEventListener("click", function () { submit(true); });
  $("unavailable-retry").addEventListener("click", function () { start(true); });
  $("reply-button").addEventListener("click", openReply);
  $("report-another").addEventListener("click", function () { showForm(true); });
  // The reporter moves what they wrote to the selected message: it is theirs to keep or change.
  $("report-selected").addEventListener("click", function () {
    var kept = formValues();
    showForm(true);
    restoreFormValues(kept);
  });

  start(false);
})();
