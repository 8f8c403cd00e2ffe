/*
 * A simulated Office host for the demo: the small part of Office.js that the task pane uses.
 *
 * Loaded by the task pane instead of Office.js when the service runs in demo mode. Like the real
 * library it talks to its host (here the demo Outlook page, /demo) with postMessage, and only
 * with a parent of the same origin. Outside the demo page it behaves like Office.js opened
 * outside Office: Office.onReady() resolves with host null.
 */
(function () {
  "use strict";

  var SOURCE_PANE = "office-sim";
  var SOURCE_HOST = "demo-outlook";

  var hostWindow = window.parent !== window ? window.parent : null;
  var host = null; // the context the demo page sent
  var itemHandlers = [];
  var resolveReady;
  var ready = new Promise(function (resolve) { resolveReady = resolve; });

  function versionAtLeast(have, want) {
    var a = String(have).split(".").map(Number);
    var b = String(want || "1.1").split(".").map(Number);
    for (var i = 0; i < Math.max(a.length, b.length); i++) {
      var x = a[i] || 0;
      var y = b[i] || 0;
      if (x !== y) return x > y;
    }
    return true;
  }

  function isSetSupported(name, version) {
    var sets = (host && host.sets) || {};
    return Object.prototype.hasOwnProperty.call(sets, name) && versionAtLeast(sets[name], version);
  }

  function asyncResult(status, value, error, asyncContext) {
    return { status: status, value: value, error: error || null, asyncContext: asyncContext };
  }

  function splitAsyncArgs(args) {
    var options = typeof args[0] === "object" && args[0] !== null ? args[0] : {};
    var callback = typeof args[0] === "function" ? args[0] : args[1];
    return { options: options, callback: typeof callback === "function" ? callback : function () {} };
  }

  function post(message) {
    if (!hostWindow) return;
    message.source = SOURCE_PANE;
    hostWindow.postMessage(message, window.location.origin);
  }

  // REST ids are EWS ids with '/' written as '-' and '+' as '_'.
  function toEws(id) {
    return String(id).replace(/-/g, "/").replace(/_/g, "+");
  }

  function toRest(id) {
    return String(id).replace(/\//g, "-").replace(/\+/g, "_");
  }

  function makeItem(data) {
    if (!data) return null;
    var from = { displayName: data.from.displayName, emailAddress: data.from.emailAddress };
    var item = {
      itemId: data.itemId,
      itemType: "message",
      subject: data.subject,
      from: from,
      sender: from,
      dateTimeCreated: new Date(data.dateTimeCreated),
      dateTimeModified: new Date(data.dateTimeCreated),
      internetMessageId: data.internetMessageId,
      displayReplyForm: function (formData) {
        var html = typeof formData === "string" ? formData : (formData && formData.htmlBody) || "";
        post({ type: "reply", htmlBody: String(html).slice(0, 32 * 1024) });
        if (formData && typeof formData.callback === "function") {
          formData.callback(asyncResult(Office.AsyncResultStatus.Succeeded, undefined));
        }
      },
    };
    if (isSetSupported("Mailbox", "1.8")) {
      item.getSharedPropertiesAsync = function () {
        var call = splitAsyncArgs(arguments);
        var owner = data.sharedOwner;
        setTimeout(function () {
          if (owner) {
            call.callback(asyncResult(Office.AsyncResultStatus.Succeeded, {
              owner: owner,
              targetMailbox: owner,
              delegatePermissions: 1,
            }, null, call.options.asyncContext));
          } else {
            call.callback(asyncResult(Office.AsyncResultStatus.Failed, undefined, {
              code: 9041,
              name: "GenericResponseError",
              message: "The item is not in a shared folder or shared mailbox.",
            }, call.options.asyncContext));
          }
        }, 0);
      };
    }
    return item;
  }

  function getAccessToken() {
    if (!host) return Promise.reject({ code: 13007, name: "HostNotReady", message: "Not running inside the demo." });
    return fetch(host.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ upn: host.user.emailAddress }),
    }).then(function (response) {
      if (!response.ok) throw { code: 13001, name: "UserNotSignedIn", message: "The demo sign-in refused." };
      return response.json();
    }, function () {
      throw { code: 13006, name: "ClientError", message: "The demo sign-in could not be reached." };
    }).then(function (body) {
      return body.access_token;
    });
  }

  var mailbox = {
    item: null,
    userProfile: { emailAddress: "", displayName: "", timeZone: "UTC" },
    diagnostics: { hostName: "OutlookWebApp", hostVersion: "15.20.0.0" },
    convertToEwsId: function (id) { return toEws(id); },
    convertToRestId: function (id) { return toRest(id); },
    addHandlerAsync: function (eventType, handler) {
      var rest = Array.prototype.slice.call(arguments, 2);
      var call = splitAsyncArgs(rest);
      if (eventType === Office.EventType.ItemChanged && typeof handler === "function") itemHandlers.push(handler);
      call.callback(asyncResult(Office.AsyncResultStatus.Succeeded, undefined, null, call.options.asyncContext));
    },
  };

  var Office = {
    HostType: { Outlook: "Outlook" },
    PlatformType: { PC: "PC", OfficeOnline: "OfficeOnline", Mac: "Mac", iOS: "iOS", Android: "Android", Universal: "Universal" },
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    EventType: { ItemChanged: "olkItemSelectedChanged" },
    MailboxEnums: { RestVersion: { v1_0: "v1.0", v2_0: "v2.0", Beta: "beta" }, ItemType: { Message: "message" } },
    context: {
      host: null,
      platform: null,
      displayLanguage: "en-US",
      requirements: { isSetSupported: isSetSupported },
      mailbox: null,
    },
    auth: { getAccessToken: getAccessToken },
    onReady: function (callback) {
      return ready.then(function (info) {
        if (typeof callback === "function") callback(info);
        return info;
      });
    },
  };

  function applyContext(context) {
    host = context;
    mailbox.userProfile = { emailAddress: context.user.emailAddress, displayName: context.user.displayName, timeZone: "UTC" };
    mailbox.diagnostics = { hostName: context.hostName, hostVersion: "15.20.0.0" };
    mailbox.item = makeItem(context.item);
    Office.context.host = Office.HostType.Outlook;
    Office.context.platform = context.platform;
    Office.context.mailbox = mailbox;
  }

  window.addEventListener("message", function (event) {
    if (!hostWindow || event.source !== hostWindow || event.origin !== window.location.origin) return;
    var data = event.data || {};
    if (data.source !== SOURCE_HOST) return;
    if (data.type === "context") {
      applyContext(data.context);
      resolveReady({ host: Office.HostType.Outlook, platform: data.context.platform });
    } else if (data.type === "item" && host) {
      mailbox.item = makeItem(data.item);
      itemHandlers.forEach(function (handler) { handler({ type: Office.EventType.ItemChanged }); });
    }
  });

  window.Office = Office;
  if (hostWindow) post({ type: "hello" });
  else resolveReady({ host: null, platform: null });
})();
