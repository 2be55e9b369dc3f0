// The family lock flow through a client generated from Steward's OpenAPI document
// (openapi-typescript + openapi-fetch), with no casts: if the spec mistypes a body, `tsc`
// fails; if the server answers other than the spec says, this program fails.
//
//   STEWARD_URL=http://127.0.0.1:8080 STEWARD_API_KEY=stw_… node dist/family-lock.js
//
// A parent registers and creates a group, invites; the child registers and joins; the child's
// phone is registered with the app's API key; the parent locks the camera off; the child's
// write is refused with SETTING_LOCKED; the child asks to unlock; the parent approves for 5
// minutes; the child's write then succeeds.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];

const baseUrl = process.env.STEWARD_URL ?? "http://127.0.0.1:8080";
const apiKey = process.env.STEWARD_API_KEY;
if (!apiKey) {
  throw new Error("STEWARD_API_KEY is not set (create one with `steward apikeys create --name app`)");
}

const client = createClient<paths>({ baseUrl });
const password = "correct horse battery staple";
const run = Date.now().toString(36);

function fail(step: string, status: number, error: ErrorEnvelope | undefined): never {
  throw new Error(`${step}: HTTP ${status} ${error ? `${error.error.code}: ${error.error.message}` : ""}`);
}

function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

async function register(name: string): Promise<{ token: string; id: string }> {
  const { data, error, response } = await client.POST("/api/v1/auth/register", {
    body: { email: `${name}-${run}@example.com`, password, displayName: name },
  });
  if (!data) fail(`register ${name}`, response.status, error);
  if (data.success !== true) throw new Error("a 201 carries success: true");
  return { token: data.data.accessToken, id: data.data.user.id };
}

async function main(): Promise<void> {
  const parent = await register("parent");
  const child = await register("child");

  const group = await client.POST("/api/v1/groups", {
    headers: bearer(parent.token),
    body: { name: "Home" },
  });
  if (!group.data) fail("create group", group.response.status, group.error);
  const groupId = group.data.data.id;

  const invite = await client.POST("/api/v1/groups/{groupId}/invites", {
    headers: bearer(parent.token),
    params: { path: { groupId } },
    body: { role: "member" },
  });
  if (!invite.data) fail("invite", invite.response.status, invite.error);

  const joined = await client.POST("/api/v1/groups/join", {
    headers: bearer(child.token),
    body: { code: invite.data.data.code },
  });
  if (!joined.data) fail("join", joined.response.status, joined.error);

  const device = await client.POST("/api/v1/devices/register", {
    headers: { ...bearer(child.token), "X-API-Key": apiKey },
    body: { deviceId: `kid-phone-${run}`, displayName: "Kid's phone", platform: "android" },
  });
  if (!device.data) fail("register device", device.response.status, device.error);
  const deviceId = device.data.data.id;
  const key = "device.camera_enabled";

  const locked = await client.POST("/api/v1/devices/{deviceId}/settings/{key}/lock", {
    headers: bearer(parent.token),
    params: { path: { deviceId, key } },
    body: { value: false, reason: "homework" },
  });
  if (!locked.data) fail("lock", locked.response.status, locked.error);
  if (locked.data.data.value !== false || locked.data.data.locked !== true) {
    throw new Error(`the lock answered ${JSON.stringify(locked.data.data)}`);
  }

  const refused = await client.PUT("/api/v1/devices/{deviceId}/settings/{key}", {
    headers: bearer(child.token),
    params: { path: { deviceId, key } },
    body: { value: true },
  });
  if (refused.data || refused.response.status !== 409 || refused.error?.error.code !== "SETTING_LOCKED") {
    throw new Error(`the member's write answered ${refused.response.status}, not 409 SETTING_LOCKED`);
  }
  if (refused.error.success !== false) throw new Error("an error carries success: false");

  const asked = await client.POST("/api/v1/devices/{deviceId}/settings/{key}/unlock-request", {
    headers: bearer(child.token),
    params: { path: { deviceId, key } },
    body: { reason: "school photo" },
  });
  if (!asked.data) fail("unlock request", asked.response.status, asked.error);

  const approved = await client.POST("/api/v1/unlock-requests/{requestId}/approve", {
    headers: bearer(parent.token),
    params: { path: { requestId: asked.data.data.id } },
    body: { durationMinutes: 5 },
  });
  if (!approved.data) fail("approve", approved.response.status, approved.error);
  if (approved.data.data.status !== "approved" || !approved.data.data.unlockUntil) {
    throw new Error(`the approval answered ${JSON.stringify(approved.data.data)}`);
  }
  const until = Date.parse(approved.data.data.unlockUntil) - Date.now();
  if (until < 4 * 60_000 || until > 5 * 60_000 + 5_000) {
    throw new Error(`the unlock lasts ${until} ms, not 5 minutes`);
  }

  const written = await client.PUT("/api/v1/devices/{deviceId}/settings/{key}", {
    headers: bearer(child.token),
    params: { path: { deviceId, key } },
    body: { value: true },
  });
  if (!written.data) fail("write while unlocked", written.response.status, written.error);
  if (written.data.data.value !== true) {
    throw new Error(`the unlocked write answered ${JSON.stringify(written.data.data)}`);
  }
  console.log("family lock flow: ok");
}

await main();
