// The pages' behaviour: HTMX swaps the item list in place, Alpine (its CSP build) counts
// characters. Nothing here needs 'unsafe-eval' or 'unsafe-inline' in the Content-Security-Policy.
import htmx from "htmx.org";
import Alpine from "@alpinejs/csp";
{%- if cookiecutter.use_auth == "yes" %}
import "./passkeys.js";
{%- endif %}

// htmx would add a <style> element for its indicators and could evaluate attribute code: the
// policy forbids both, so neither is used. Set before htmx starts (on DOMContentLoaded).
Object.assign(htmx.config, {
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  // Swap 422 too: the server answers invalid input with the form and its errors.
  responseHandling: [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true },
    { code: "[45]..", swap: false, error: true },
  ],
});
window.htmx = htmx;

// Every HTMX request carries the page's CSRF token in the header Flask-WTF reads.
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.querySelector('meta[name="csrf-token"]');
  if (token) {
    event.detail.headers["X-CSRFToken"] = token.content;
  }
});

// A refused or failed request (a stale CSRF token, a rate limit, the server down) says so above
// the list; the next request of the user's hides the message again.
function showRequestError(text) {
  const box = document.getElementById("request-error");
  if (box) {
    box.textContent = text;
    box.hidden = !text;
  }
}
// The service's JSON error says what went wrong (its detail); another answer gets the advice.
function errorDetail(xhr) {
  try {
    const detail = JSON.parse(xhr.responseText).error.detail;
    if (typeof detail === "string" && detail) {
      return detail;
    }
  } catch {
    // not the service's JSON error (a proxy's page, say)
  }
  return "reload the page and retry.";
}
function failure(xhr) {
  if (xhr.status === 429) {
    const wait = xhr.getResponseHeader("Retry-After");
    return `Too many requests: retry ${wait ? `in ${wait} s` : "in a minute"}.`;
  }
  return `The request failed (${xhr.status}): ${errorDetail(xhr)}`;
}

// The check of pending items (#pending-poll, items/templates/items/_poll.html) is the page's
// own, not the user's: refused (429) or failed, it asks again quietly after the server's
// Retry-After, or 30 s, at most 5 times in a row; only then does the page say so.
const POLL_RETRIES = 5;
const POLL_RETRY_SECONDS = 30;
function isPoll(element) {
  return element.id === "pending-poll";
}
function retryPoll(poll, xhr) {
  const failures = Number(poll.dataset.failures || 0) + 1;
  poll.dataset.failures = failures;
  if (failures > POLL_RETRIES) {
    showRequestError("The pending items could not be checked: reload the page later.");
    return;
  }
  // Retry-After counts whole seconds rounded down ("0": the window ends within the second), so
  // one more second lands after the window's end.
  const after = Number.parseInt(xhr?.getResponseHeader("Retry-After") ?? "", 10);
  const seconds = Number.isNaN(after) ? POLL_RETRY_SECONDS : after + 1;
  setTimeout(() => htmx.trigger(poll, "retry"), seconds * 1000);
}

document.addEventListener("htmx:beforeRequest", (event) => {
  if (!isPoll(event.detail.elt)) {
    showRequestError("");
  }
});
document.addEventListener("htmx:responseError", (event) => {
  const { elt, xhr } = event.detail;
  if (isPoll(elt)) {
    retryPoll(elt, xhr);
  } else {
    showRequestError(failure(xhr));
  }
});
document.addEventListener("htmx:sendError", (event) => {
  if (isPoll(event.detail.elt)) {
    retryPoll(event.detail.elt, null);
  } else {
    showRequestError("The server could not be reached: check the connection and retry.");
  }
});

// A form that ends something asks first (data-confirm holds the question): the browser's own
// dialog, which the policy allows; without JavaScript the form posts at once.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The name field's counter: characters left of the field's maxlength.
Alpine.data("charCounter", () => ({
  left: 0,
  init() {
    this.left = this.$refs.field.maxLength - this.$refs.field.value.length;
  },
  count() {
    this.left = this.$refs.field.maxLength - this.$refs.field.value.length;
  },
}));

window.Alpine = Alpine;
Alpine.start();
