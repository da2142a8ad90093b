// The live socket's own rules, on a fake connection and fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LiveSocket, memoryStore, type SocketCallbacks, type SocketFactory } from "../src";

class FakeServer {
  connections: Array<{ url: string; protocols: string[]; on: SocketCallbacks; sent: string[]; closed?: number }> = [];
  factory: SocketFactory = (url, protocols, on) => {
    const connection = { url, protocols, on, sent: [] as string[], closed: undefined as number | undefined };
    this.connections.push(connection);
    return { send: (text) => connection.sent.push(text), close: (code) => (connection.closed = code) };
  };
  get last() {
    return this.connections[this.connections.length - 1];
  }
  event(seq: number, type = "offer.created") {
    this.last.on.message(JSON.stringify({ seq, type, data: { id: seq }, at: "2026-01-01T00:00:00.000000+08:00" }));
  }
}

let server: FakeServer;
beforeEach(() => {
  vi.useFakeTimers();
  server = new FakeServer();
});
afterEach(() => vi.useRealTimers());

function socket(options: Partial<ConstructorParameters<typeof LiveSocket>[0]> = {}) {
  return new LiveSocket({ url: "ws://x/ws/", token: () => "tok", connect: server.factory, random: () => 1, ...options });
}

describe("LiveSocket", () => {
  it("offers the token as a subprotocol and resumes from the persisted seq", async () => {
    const live = socket({ store: memoryStore({ "marketplace.seq": "41" }) });
    live.start();
    expect(server.last.protocols).toEqual(["marketplace.v1", "bearer.tok"]);
    server.last.on.open();
    await vi.advanceTimersByTimeAsync(0);
    expect(JSON.parse(server.last.sent[0])).toEqual({ action: "resume", since: 41, id: "resume" });
  });

  it("delivers each seq once, in order, and persists it", async () => {
    const store = memoryStore();
    const live = socket({ store });
    const seen: number[] = [];
    live.on("offer.created", (frame) => seen.push(frame.seq));
    live.start();
    server.last.on.open();
    for (const seq of [1, 2, 2, 1, 3]) server.event(seq);
    expect(seen).toEqual([1, 2, 3]);
    expect(store.get("marketplace.seq")).toBe("3");
  });

  it("hands notification.created (live only, no seq) to its handlers without moving the seq", async () => {
    const store = memoryStore();
    const live = socket({ store });
    const titles: string[] = [];
    const everything: string[] = [];
    live.on("notification.created", (frame) => titles.push(frame.data.title));
    live.on("*", (frame) => everything.push(frame.type));
    live.start();
    server.last.on.open();
    server.event(1);
    const entry = { id: 9, type: "offer.created", title: "收到新出价", body: "买家出价 ¥70.00", params: {}, target: null, read_at: null, created_at: "2026-01-01T00:00:00.000000+08:00" };
    server.last.on.message(JSON.stringify({ type: "notification.created", data: entry, at: entry.created_at }));
    expect(titles).toEqual(["收到新出价"]);
    expect(everything).toEqual(["offer.created", "notification.created"]);
    expect(store.get("marketplace.seq")).toBe("1");
  });

  it("reconnects with jittered, growing, capped delays, and resets after a resume", async () => {
    const draws = [0.5, 0.5, 0.5, 0.5, 0.5];
    const live = socket({ random: () => draws.shift() ?? 0.5, backoff: { initialMs: 100, maxMs: 300 } });
    live.start();
    const delays: number[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      const count = server.connections.length;
      server.last.on.close(1006);
      let waited = 0;
      while (server.connections.length === count) {
        await vi.advanceTimersByTimeAsync(10);
        waited += 10;
      }
      delays.push(waited);
    }
    // 0.5 × min(300, 100 × 2^n): 50, 100, 150, 150
    expect(delays).toEqual([50, 100, 150, 150]);
    server.last.on.open();
    server.last.on.message(JSON.stringify({ type: "ack", ref: "resume", data: { action: "resume", replayed: 0, seq: 0 } }));
    await vi.advanceTimersByTimeAsync(0);
    server.last.on.close(1006);
    const count = server.connections.length;
    await vi.advanceTimersByTimeAsync(50);
    expect(server.connections.length).toBe(count + 1);
  });

  it.each([
    [4401, "unauthenticated"],
    [4403, "banned"],
  ])("never reconnects after %i: it reports the session lost", async (code, reason) => {
    const live = socket();
    const lost = vi.fn();
    live.on("sessionLost", lost);
    live.start();
    server.last.on.open();
    server.last.on.close(code);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(server.connections).toHaveLength(1);
    expect(lost).toHaveBeenCalledWith({ code, reason });
  });

  it("pings on the heartbeat and drops a connection that went silent", async () => {
    const live = socket({ heartbeatMs: 1_000 });
    live.start();
    server.last.on.open();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(server.last.sent).toContain('{"action":"ping"}');
    await vi.advanceTimersByTimeAsync(2_000);
    expect(server.connections[0].closed).toBe(4000);
    expect(live.connected).toBe(false);
  });

  it("resolves actions by their ack and rejects them by their error or a close", async () => {
    const live = socket();
    live.start();
    server.last.on.open();
    const made = live.action("offer.make", { listing_id: 1, price: 100 });
    const sent = JSON.parse(server.last.sent.at(-1)!);
    expect(sent).toMatchObject({ action: "offer.make", listing_id: 1, price: 100 });
    server.last.on.message(JSON.stringify({ type: "ack", ref: sent.id, data: { id: 9 } }));
    await expect(made).resolves.toEqual({ id: 9 });

    const refused = live.action("offer.withdraw", { offer_id: 9 });
    const ref = JSON.parse(server.last.sent.at(-1)!).id;
    server.last.on.message(JSON.stringify({ type: "error", ref, data: { code: "offer_not_open", message: "no" } }));
    await expect(refused).rejects.toMatchObject({ code: "offer_not_open" });

    const cut = live.action("offer.decline", { offer_id: 9 });
    server.last.on.close(1006);
    await expect(cut).rejects.toMatchObject({ code: "socket_closed" });
    await expect(live.action("offer.decline", { offer_id: 9 })).rejects.toMatchObject({ code: "not_connected" });
  });
});
