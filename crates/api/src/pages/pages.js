// Steward's built-in pages for the links in account mail and report unsubscribe links: read the token from the link, hide
// it from the address bar, and call the API when the form is sent. No framework, no cookies.
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  var form = document.getElementById("form");
  var status = document.getElementById("status");
  // Steward's own links carry the token in the fragment (never sent to a server); a link built
  // by a custom template may carry it in the query.
  var token = new URLSearchParams(window.location.hash.slice(1)).get("token") ||
    new URLSearchParams(window.location.search).get("token") || "";
  if (token) {
    // Out of the address bar, so it is not shared with a screenshot or a copied link.
    window.history.replaceState(null, "", window.location.pathname);
  }
  var done = {
    "verify-email": "Your email address is confirmed. You can close this page.",
    "reset-password": "Your password is changed and every session is signed out. Sign in with the new password.",
    "accept-invitation": "Your password is set and your address confirmed. Sign in with your email and the new password.",
    "report-unsubscribe": "You are unsubscribed: this report is no longer mailed to you. You can close this page."
  };
  function show(text, ok) {
    status.textContent = text;
    status.className = ok ? "ok" : "error";
  }
  if (!token) {
    form.hidden = true;
    show("This link has no token: open the link from your mail again.", false);
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { token: token };
    if (page === "reset-password" || page === "accept-invitation") {
      var password = form.elements.namedItem("password").value;
      if (password !== form.elements.namedItem("confirm").value) {
        show("The two passwords differ.", false);
        return;
      }
      if (page === "reset-password") {
        body.newPassword = password;
      } else {
        body.password = password;
      }
    }
    var button = form.querySelector("button");
    button.disabled = true;
    show("", true);
    // The unsubscribe link's token travels in the query (as in the mail's one-click header).
    var request = page === "report-unsubscribe" ?
      fetch("api/v1/report-unsubscribe?token=" + encodeURIComponent(token), {
        method: "POST",
        headers: { "Accept": "application/json" }
      }) :
      fetch("api/v1/auth/" + page, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body)
      });
    request.then(function (response) {
      if (response.ok) {
        form.hidden = true;
        show(done[page], true);
        return;
      }
      return response.json().then(function (answer) {
        var error = (answer && answer.error) || {};
        var detail = error.details && error.details.length ? error.details[0].message : "";
        var message = error.message || "The request was refused.";
        if ((error.details && error.details.length && error.details[0].field === "token") ||
            (page === "report-unsubscribe" && response.status === 404)) {
          message = "This link is invalid, expired or already used. Ask for a new mail.";
        } else if (detail) {
          message = message + ": " + detail;
        }
        show(message, false);
      }, function () {
        show("The request was refused (" + response.status + ").", false);
      });
    }, function () {
      show("Steward could not be reached. Try again.", false);
    }).then(function () {
      button.disabled = false;
    });
  });
})();
