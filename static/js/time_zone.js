// The browser's time zone, for consumers whose zone is still unknown: put into the signup form's
// hidden field, or reported once for a signed-in consumer. Without JavaScript nothing happens and
// the site's zone applies until the consumer chooses one on their profile.
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (!zone) {
    return;
  }
  var script = document.currentScript;
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('input[type="hidden"][name="time_zone"]').forEach(function (input) {
      input.value = zone;
    });
  });
  if (script && script.dataset.prefillUrl) {
    var body = new URLSearchParams({ time_zone: zone });
    fetch(script.dataset.prefillUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": script.dataset.csrf },
    });
  }
})();
