// Steward's built-in mail pages in headless Chromium, against a fresh server started by
// scripts/check-pages.sh (STEWARD_URL, and STEWARD_OUTBOX: the directory the server writes
// its mail to when no SMTP server is configured).
//
// 1. Register: the verification mail's HTML is opened as a mail client would show it, its
//    button followed, the address confirmed on the page; the API then says it is verified.
// 2. Forgot password: the reset mail's button leads to the page, which hides the token from
//    the address bar, shows the API's refusal of a weak password and of two different ones,
//    sets a strong one, and signs every session out; the new password signs in, the old one
//    does not, and the used link shows that it is used.
// 3. An operator creates an account without a password: the invitation mail's button leads to
//    the page that sets the first password, which then signs in (STEWARD_ADMIN_EMAIL and
//    STEWARD_ADMIN_PASSWORD: a super_admin the script created with the CLI).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.STEWARD_URL;
const outbox = process.env.STEWARD_OUTBOX;
if (!base || !outbox) throw new Error("STEWARD_URL and STEWARD_OUTBOX must be set");

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`ok - ${message}`);
}

async function api(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// --- reading the outbox as a mail client would -------------------------------------------

function decodePart(part) {
  const split = part.indexOf("\r\n\r\n");
  const head = part.slice(0, split);
  const body = part.slice(split + 4);
  const encoding = (/content-transfer-encoding:\s*([\w-]+)/i.exec(head) || [])[1] || "7bit";
  const type = (/content-type:\s*([\w/-]+)/i.exec(head) || [])[1] || "text/plain";
  let decoded;
  if (encoding.toLowerCase() === "base64") {
    decoded = Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
  } else if (encoding.toLowerCase() === "quoted-printable") {
    const bytes = body
      .replace(/=\r\n/g, "")
      .replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    decoded = Buffer.from(bytes, "latin1").toString("utf8");
  } else {
    decoded = body;
  }
  return { type: type.toLowerCase(), body: decoded };
}

function parseMail(raw) {
  const headerEnd = raw.indexOf("\r\n\r\n");
  const headers = raw.slice(0, headerEnd).replace(/\r\n[ \t]+/g, " ");
  const to = (/^To:\s*(.*)$/im.exec(headers) || [])[1] || "";
  const subject = (/^Subject:\s*(.*)$/im.exec(headers) || [])[1] || "";
  const boundary = (/boundary="?([^";\r\n]+)"?/i.exec(headers) || [])[1];
  const parts = {};
  if (boundary) {
    for (const chunk of raw.split(`--${boundary}`).slice(1)) {
      if (chunk.startsWith("--")) break;
      const part = decodePart(chunk.replace(/^\r\n/, ""));
      parts[part.type] = part.body;
    }
  } else {
    parts["text/plain"] = decodePart(raw).body;
  }
  return { to, subject, text: parts["text/plain"], html: parts["text/html"] };
}

async function waitForMail(recipient, subject, seen) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    for (const name of (await readdir(outbox).catch(() => [])).sort()) {
      if (!name.endsWith(".eml") || seen.has(name)) continue;
      const mail = parseMail(await readFile(join(outbox, name), "utf8"));
      if (mail.to.includes(recipient) && mail.subject.includes(subject)) {
        seen.add(name);
        return mail;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no mail "${subject}" to ${recipient} within 15 s`);
}

// --- the flows ----------------------------------------------------------------------------

const email = `pages-${Date.now()}@example.com`;
const firstPassword = "Correct Horse Battery 42";
const newPassword = "Staple Lantern Orbit 97";
const seen = new Set();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (message) => {
    // Refused API calls (the weak password, the used link) and the missing favicon are logged
    // as failed loads; anything else — a script error, a CSP violation — is a defect.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      consoleErrors.push(`${message.text()} (on ${page.url()})`);
    }
  });

  const registered = await api("POST", "/api/v1/auth/register", {
    email,
    password: firstPassword,
    displayName: "Page Tester",
  });
  check(registered.status === 201, "registered");
  const accessToken = registered.body.data.accessToken;

  // 1. The verification mail, opened and clicked.
  const verification = await waitForMail(email, "Confirm your email address", seen);
  check(verification.html && verification.text, "the verification mail has text and HTML parts");
  await page.setContent(verification.html);
  await Promise.all([page.waitForURL(/\/verify-email/), page.click("a:text-is(\"Confirm email address\")")]);
  check(!page.url().includes("token="), "the token is gone from the address bar");
  await page.click("button[type=submit]");
  await page.waitForSelector("#status.ok");
  check(
    (await page.textContent("#status")).includes("confirmed"),
    "the page says the address is confirmed",
  );
  const me = await api("GET", "/api/v1/auth/me", undefined, accessToken);
  check(me.body.data.emailVerified === true, "the API says the address is verified");

  // 2. Forgot password → the reset mail, opened and clicked.
  const asked = await api("POST", "/api/v1/auth/forgot-password", { email });
  check(asked.status === 202, "a reset mail was asked for");
  const reset = await waitForMail(email, "Reset your password", seen);
  // A blank document first: setContent writes into the current one, which has the pages' CSP.
  await page.goto("about:blank");
  await page.setContent(reset.html);
  await Promise.all([page.waitForURL(/\/reset-password/), page.click("a:text-is(\"Choose a new password\")")]);
  check(!page.url().includes("token="), "the reset token is gone from the address bar");
  const resetUrl = /https?:\/\/\S+?token=[\w-]+/.exec(reset.text)[0];

  await page.fill("#password", "password");
  await page.fill("#confirm", "password");
  await page.click("button[type=submit]");
  await page.waitForSelector("#status.error");
  const weak = await page.textContent("#status");
  check(/password/i.test(weak) && weak.length > 20, `a weak password is refused with the API's reason: "${weak}"`);

  await page.fill("#password", newPassword);
  await page.fill("#confirm", `${newPassword}!`);
  await page.click("button[type=submit]");
  check((await page.textContent("#status")).includes("differ"), "two different passwords are refused on the page");

  await page.fill("#confirm", newPassword);
  await page.click("button[type=submit]");
  await page.waitForSelector("#status.ok");
  check((await page.textContent("#status")).includes("password is changed"), "the page says the password is changed");
  check(await page.isHidden("#form"), "the form is gone");

  // Sign in with it, from the page (the same origin as the API).
  const signIn = (password) =>
    page.evaluate(async ([address, secret]) => {
      const response = await fetch("api/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: address, password: secret }),
      });
      return response.status;
    }, [email, password]);
  check((await signIn(newPassword)) === 200, "the new password signs in");
  check((await signIn(firstPassword)) === 401, "the old password does not");
  const old = await api("GET", "/api/v1/auth/me", undefined, accessToken);
  check(old.status === 401, "the session from before the reset is signed out");

  // The used link shows that it is used.
  // (From a blank page: a link differing only in its fragment would not load the page again.)
  await page.goto("about:blank");
  await page.goto(resetUrl);
  await page.fill("#password", "Another Sturdy Phrase 13");
  await page.fill("#confirm", "Another Sturdy Phrase 13");
  await page.click("button[type=submit]");
  await page.waitForSelector("#status.error");
  check((await page.textContent("#status")).includes("already used"), "a used link says so");

  // 3. An operator's invitation: the page sets the first password, which then signs in.
  const adminEmail = process.env.STEWARD_ADMIN_EMAIL;
  const adminPassword = process.env.STEWARD_ADMIN_PASSWORD;
  const admin = await api("POST", "/api/v1/auth/login", { email: adminEmail, password: adminPassword });
  check(admin.status === 200, "the operator signs in");
  const invitee = `invited-${Date.now()}@example.com`;
  const created = await api(
    "POST",
    "/api/admin/v1/users",
    { email: invitee, displayName: "New Hire" },
    admin.body.data.accessToken,
  );
  check(created.status === 201, "the operator creates an account without a password");
  const invitation = await waitForMail(invitee, "Your new account", seen);
  await page.goto("about:blank");
  await page.setContent(invitation.html);
  await Promise.all([page.waitForURL(/\/accept-invitation/), page.click("a:text-is(\"Choose a password\")")]);
  await page.fill("#password", newPassword);
  await page.fill("#confirm", newPassword);
  await page.click("button[type=submit]");
  await page.waitForSelector("#status.ok");
  check((await page.textContent("#status")).includes("password is set"), "the invitation page sets the first password");
  const invitedSignIn = await api("POST", "/api/v1/auth/login", { email: invitee, password: newPassword });
  check(invitedSignIn.status === 200, "the invited account signs in with it");
  check(invitedSignIn.body.data.user.emailVerified === true, "and its address is confirmed");

  // A link without its token.
  await page.goto(`${base}/reset-password`);
  check(await page.isHidden("#form"), "without a token there is no form");

  check(consoleErrors.length === 0, `no script errors or CSP violations: ${consoleErrors.join("; ")}`);
} finally {
  await browser.close();
}
console.log("the built-in mail pages work in Chromium");
