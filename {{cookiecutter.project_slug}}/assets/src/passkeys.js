// Passkeys (WebAuthn): the sign-in page's button and the passkey page's form ask the server for a
// ceremony's options, have the browser's authenticator answer them (navigator.credentials), and
// post the answer back with the page's CSRF token. WebAuthn takes and gives bytes; the JSON
// between browser and server carries them as base64url text, converted here.

function toBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function toText(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withBytes(descriptors) {
  return (descriptors || []).map((d) => ({ ...d, id: toBytes(d.id) }));
}

// POST JSON with the page's CSRF token; return the answer's JSON, or throw its detail.
async function post(url, body) {
  const token = document.querySelector('meta[name="csrf-token"]');
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.content : "" },
    body: JSON.stringify(body ?? {}),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // not JSON (a proxy's page, say): the status says enough
  }
  if (!response.ok) {
    const detail = answer?.error?.detail;
    throw new Error(typeof detail === "string" ? detail : `The request failed (${response.status}).`);
  }
  return answer;
}

async function register(form) {
  const options = await post(form.dataset.options);
  const publicKey = {
    ...options,
    challenge: toBytes(options.challenge),
    user: { ...options.user, id: toBytes(options.user.id) },
    excludeCredentials: withBytes(options.excludeCredentials),
  };
  const credential = await navigator.credentials.create({ publicKey });
  const { response } = credential;
  await post(form.dataset.verify, {
    name: form.elements.name.value,
    credential: {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        attestationObject: toText(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : [],
      },
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment,
    },
  });
  window.location.reload();
}

async function signIn(section) {
  const options = await post(section.dataset.options);
  const publicKey = {
    ...options,
    challenge: toBytes(options.challenge),
    allowCredentials: withBytes(options.allowCredentials),
  };
  const credential = await navigator.credentials.get({ publicKey });
  const { response } = credential;
  const answer = await post(section.dataset.verify, {
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toText(response.clientDataJSON),
      authenticatorData: toText(response.authenticatorData),
      signature: toText(response.signature),
      userHandle: response.userHandle ? toText(response.userHandle) : null,
    },
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment,
  });
  window.location.assign(answer.next);
}

// Run a ceremony on the trigger's event; say in the container's #passkey-error why it failed.
function ceremony(container, trigger, event, run) {
  trigger.addEventListener(event, async (e) => {
    e.preventDefault();
    const box = container.querySelector("#passkey-error");
    box.hidden = true;
    try {
      await run(container);
    } catch (error) {
      // NotAllowedError: the user cancelled, or the authenticator timed out.
      box.textContent =
        error.name === "NotAllowedError" ? "No passkey was used." : error.message || String(error);
      box.hidden = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const supported = Boolean(window.PublicKeyCredential && navigator.credentials);
  const form = document.getElementById("passkey-add");
  const section = document.getElementById("passkey-sign-in");
  if (!supported) {
    for (const element of [form, section].filter(Boolean)) {
      element.hidden = true; // this browser has no WebAuthn: the password stays
    }
    return;
  }
  if (form) {
    ceremony(form, form, "submit", register);
  }
  if (section) {
    ceremony(section, section.querySelector("button"), "click", signIn);
  }
});
