import { inject } from "vitest";
import WebSocket from "ws";
import {
  fetchTransport,
  LiveSocket,
  MarketplaceClient,
  memoryStore,
  webSocketFactory,
  type EventFrame,
  type KeyValueStore,
  type SocketFactory,
} from "../src";

export const baseUrl = inject("baseUrl");

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(baseUrl + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

/** The sandbox plays wx.login: a one-time code for this openid. */
export async function sandboxLoginCode(openid: string): Promise<string> {
  return String((await post("/sandbox/wechat/login-code", { openid })).code);
}

/** The sandbox plays the WeChat app paying for a prepay id. */
export function sandboxPay(prepayId: string) {
  return post("/sandbox/wechat/pay", { prepay_id: prepayId });
}

export function sandboxAdvanceParcel(trackingNo: string) {
  return post("/sandbox/kuaidi100/advance", { tracking_no: trackingNo });
}

const run = `${process.pid}-${Date.now().toString(36)}`;

/** A signed-in user whose silent re-login uses the sandbox's wx.login. */
export async function newUser(name: string): Promise<MarketplaceClient> {
  const openid = `sdk-${name}-${run}`;
  const client = new MarketplaceClient({
    baseUrl,
    transport: fetchTransport(),
    store: memoryStore(),
    login: () => sandboxLoginCode(openid),
  });
  await client.signIn(await sandboxLoginCode(openid), { nickname: name });
  return client;
}

/** Every text frame both ways, for validation against the AsyncAPI document. */
export const captured: Array<{ direction: "in" | "out"; text: string }> = [];

export function capturing(factory: SocketFactory): SocketFactory {
  return (url, protocols, on) => {
    const connection = factory(url, protocols, {
      ...on,
      message: (text) => {
        captured.push({ direction: "in", text });
        on.message(text);
      },
    });
    return {
      send: (text) => {
        captured.push({ direction: "out", text });
        connection.send(text);
      },
      close: (code) => connection.close(code),
    };
  };
}

export function liveSocket(client: MarketplaceClient, store: KeyValueStore = memoryStore()): LiveSocket {
  return new LiveSocket({
    url: client.socketUrl,
    token: () => client.token,
    connect: capturing(webSocketFactory(WebSocket as never)),
    store,
    storeKey: `marketplace.seq.${client.user!.id}`,
    heartbeatMs: 5_000,
    backoff: { initialMs: 50, maxMs: 400 },
  });
}

/** Records a socket's events and waits for the one a test needs. */
export class Recorder {
  readonly frames: EventFrame[] = [];
  private waiters: Array<() => void> = [];

  /** The frames of the resumable stream (without the live-only `notification.created`). */
  get sequenced(): Array<Extract<EventFrame, { seq: number }>> {
    return this.frames.filter((frame): frame is Extract<EventFrame, { seq: number }> => "seq" in frame);
  }

  constructor(socket: LiveSocket) {
    socket.on("*", (frame) => {
      this.frames.push(frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  async waitFor<T extends EventFrame["type"]>(
    type: T,
    predicate: (frame: Extract<EventFrame, { type: T }>) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<Extract<EventFrame, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(
        (frame): frame is Extract<EventFrame, { type: T }> =>
          frame.type === type && predicate(frame as Extract<EventFrame, { type: T }>),
      );
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} event within ${timeoutMs} ms; got ${this.frames.map((f) => f.type).join(", ")}`);
      await new Promise<void>((wake) => {
        const timer = setTimeout(wake, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          wake();
        });
      });
    }
  }
}

export function waitUntil(socket: LiveSocket, event: "ready"): Promise<{ replayed: number; seq: number }> {
  return new Promise((resolve) => {
    const off = socket.on(event, (value) => {
      off();
      resolve(value);
    });
  });
}

/** The Django admin over HTTP, as the demo drives it: session cookie plus CSRF token. */
export class Admin {
  private cookies = new Map<string, string>();

  private async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const response = await fetch(baseUrl + path, {
      ...init,
      redirect: "manual",
      headers: { ...(init.headers as Record<string, string>), Cookie: this.cookieHeader() },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(";");
      const index = pair.indexOf("=");
      this.cookies.set(pair.slice(0, index), pair.slice(index + 1));
    }
    return response;
  }

  private cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }

  private async submit(path: string, fields: Array<[string, string]>): Promise<Response> {
    const page = await (await this.fetch(path)).text();
    const token = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(page)?.[1];
    if (!token) throw new Error(`no CSRF token on ${path}`);
    const body = new URLSearchParams([["csrfmiddlewaretoken", token], ...fields]);
    return this.fetch(path, {
      method: "POST",
      body,
      headers: { "Content-Type": "application/x-www-form-urlencoded", Referer: baseUrl + path },
    });
  }

  async logIn(username: string, password: string): Promise<void> {
    const response = await this.submit("/admin/login/?next=/admin/", [
      ["username", username],
      ["password", password],
      ["next", "/admin/"],
    ]);
    if (response.status !== 302) throw new Error(`admin login refused (${response.status})`);
  }

  async action(changelist: string, action: string, ids: number[], extra: Record<string, string> = {}) {
    const response = await this.submit(changelist, [
      ["action", action],
      ...ids.map((id): [string, string] => ["_selected_action", String(id)]),
      ...Object.entries(extra),
    ]);
    if (response.status >= 400) throw new Error(`admin action ${action}: ${response.status}`);
  }
}
