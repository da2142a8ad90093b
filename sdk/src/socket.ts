import { SocketActionError } from "./errors";
import type {
  ActionName,
  ActionPayload,
  ActionReplies,
  EventFrame,
  EventFrames,
  EventType,
} from "./generated/socket";
import { CLOSE_CODES } from "./generated/socket";
import type { KeyValueStore } from "./store";
import { memoryStore } from "./store";

/** The frames of the resumable stream (every event but the live-only `notification.created`). */
type SequencedFrame = Extract<EventFrame, { seq: number }>;

/** What the live socket needs of a WebSocket: `wx.connectSocket`'s task, `ws` or a browser's. */
export interface SocketConnection {
  send(text: string): void;
  close(code?: number): void;
}

export interface SocketCallbacks {
  open(): void;
  message(text: string): void;
  close(code: number): void;
}

export type SocketFactory = (url: string, protocols: string[], on: SocketCallbacks) => SocketConnection;

/** `wx.connectSocket` (the mini-program). */
export function wxSocketFactory(api: WechatMiniprogram.Wx = wx): SocketFactory {
  return (url, protocols, on) => {
    const task = api.connectSocket({ url, protocols });
    task.onOpen(() => on.open());
    task.onMessage((message) => {
      if (typeof message.data === "string") on.message(message.data);
    });
    task.onClose((result) => on.close(result.code));
    // wx reports a failed connect as an error and then (not always) a close: treat it as one.
    task.onError(() => on.close(1006));
    return {
      send: (text) => task.send({ data: text }),
      close: (code) => task.close({ code: code ?? 1000 }),
    };
  };
}

interface WebSocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number): void;
}

/** A standard WebSocket class: `ws` in Node (`webSocketFactory(WebSocket)`), or a browser's. */
export function webSocketFactory(
  WebSocketClass: new (url: string, protocols: string[]) => WebSocketLike,
): SocketFactory {
  return (url, protocols, on) => {
    const socket = new WebSocketClass(url, protocols);
    let closed = false;
    const closeOnce = (code: number) => {
      if (!closed) {
        closed = true;
        on.close(code);
      }
    };
    socket.onopen = () => on.open();
    socket.onmessage = (event) => {
      if (typeof event.data === "string") on.message(event.data);
      else if (event.data != null) on.message(String(event.data));
    };
    socket.onclose = (event) => closeOnce(event.code);
    socket.onerror = () => undefined; // a close follows
    return { send: (text) => socket.send(text), close: (code) => socket.close(code ?? 1000) };
  };
}

export interface LiveSocketOptions {
  /** `client.socketUrl`: `wss://host/ws/`. */
  url: string;
  /** The API token (read on every connect, so a re-login is picked up). */
  token: () => string | null;
  connect: SocketFactory;
  /** Where the last seq handled is kept (`wxStore()`): a cold start resumes from it. */
  store?: KeyValueStore;
  /** The store key; make it per user (`marketplace.seq.<user id>`). */
  storeKey?: string;
  /** With no stored seq (a first install), where to start; defaults to 0 (everything stored). */
  initialSeq?: () => Promise<number>;
  heartbeatMs?: number;
  /** Reconnect delays: full jitter, random() × min(maxMs, initialMs × 2^attempt). */
  backoff?: { initialMs?: number; maxMs?: number };
  actionTimeoutMs?: number;
  random?: () => number;
}

export type SessionLost = { code: number; reason: "unauthenticated" | "banned" };
type Handler<T> = (value: T) => void;
type Pending = { resolve: (data: unknown) => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> };

/**
 * The user's live socket: connects with the token as a subprotocol, resumes from the persisted
 * seq on every (re)connect (each event is handled once, in order, even across cold starts),
 * pings, reconnects with jittered backoff, and stops for good on 4401/4403 (`sessionLost`).
 */
export class LiveSocket {
  private readonly options: Required<Omit<LiveSocketOptions, "initialSeq" | "backoff">> &
    Pick<LiveSocketOptions, "initialSeq"> & { initialMs: number; maxMs: number };
  private connection: SocketConnection | null = null;
  private open = false;
  private stopped = true;
  private attempt = 0;
  private nextId = 1;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private lastFrameAt = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly handlers = new Map<string, Set<Handler<never>>>();

  constructor(options: LiveSocketOptions) {
    this.options = {
      store: memoryStore(),
      storeKey: "marketplace.seq",
      heartbeatMs: 30_000,
      actionTimeoutMs: 15_000,
      random: Math.random,
      ...options,
      initialMs: options.backoff?.initialMs ?? 500,
      maxMs: options.backoff?.maxMs ?? 30_000,
    };
  }

  /** The highest seq handled (persisted). */
  get lastSeq(): number | null {
    const stored = this.options.store.get(this.options.storeKey);
    return stored == null ? null : Number(stored);
  }

  get connected(): boolean {
    return this.open;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.connectNow();
  }

  /** Closes and stays closed (sign-out, page hidden for good). */
  stop(): void {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.connection?.close(1000);
    this.teardown("socket_closed");
  }

  /** Drops the connection as a network loss would; the socket reconnects and resumes. */
  drop(): void {
    this.connection?.close(4000);
  }

  // --- subscriptions -------------------------------------------------------------------------

  /** A typed handler for one event type; returns the unsubscribe function. */
  on<T extends EventType>(type: T, handler: Handler<EventFrames[T]>): () => void;
  on(type: "*", handler: Handler<EventFrame>): () => void;
  /** Resumed: every missed event has been delivered (`replayed` of them). */
  on(type: "ready", handler: Handler<{ replayed: number; seq: number }>): () => void;
  /** The token is no longer valid (4401) or the user is banned (4403): no reconnect. */
  on(type: "sessionLost", handler: Handler<SessionLost>): () => void;
  /** Some missed events were past the retention: reload state over REST. */
  on(type: "resync", handler: Handler<{ code: string; message: string }>): () => void;
  on(type: "state", handler: Handler<"connecting" | "open" | "closed">): () => void;
  on(type: string, handler: Handler<never>): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set!.delete(handler);
  }

  // --- actions -------------------------------------------------------------------------------

  /** Sends a socket action; resolves with its `ack`'s data, rejects with `SocketActionError`. */
  action<A extends Exclude<ActionName, "ping" | "resume">>(
    name: A,
    payload: ActionPayload<A>,
  ): Promise<ActionReplies[A]> {
    if (!this.open || !this.connection) {
      return Promise.reject(new SocketActionError("not_connected", "The socket is not connected."));
    }
    const id = `a${this.nextId++}`;
    const connection = this.connection;
    return new Promise<ActionReplies[A]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SocketActionError("timeout", `No answer to ${name}.`));
      }, this.options.actionTimeoutMs);
      this.pending.set(id, { resolve: resolve as (data: unknown) => void, reject, timer });
      connection.send(JSON.stringify({ ...payload, action: name, id }));
    });
  }

  // --- the connection ------------------------------------------------------------------------

  private connectNow(): void {
    this.reconnectTimer = null;
    const token = this.options.token();
    if (!token) {
      this.stopped = true;
      this.emit("sessionLost", { code: CLOSE_CODES["4401"], reason: "unauthenticated" });
      return;
    }
    this.emit("state", "connecting");
    let current: SocketConnection | null = null;
    current = this.options.connect(this.options.url, ["marketplace.v1", `bearer.${token}`], {
      open: () => {
        if (this.connection !== current) return;
        this.open = true;
        this.lastFrameAt = Date.now();
        this.emit("state", "open");
        void this.resume(current!);
        this.startHeartbeat(current!);
      },
      message: (text) => {
        if (this.connection === current) this.receive(text);
      },
      close: (code) => {
        if (this.connection === current) this.closed(code);
      },
    });
    this.connection = current;
  }

  private async resume(connection: SocketConnection): Promise<void> {
    let since = this.lastSeq;
    if (since === null) {
      since = this.options.initialSeq ? await this.options.initialSeq() : 0;
      this.options.store.set(this.options.storeKey, String(since));
    }
    if (this.connection === connection) connection.send(JSON.stringify({ action: "resume", since, id: "resume" }));
  }

  private startHeartbeat(connection: SocketConnection): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastFrameAt > this.options.heartbeatMs * 2.5) {
        // Nothing, not even a pong, for two beats: the connection is dead without a close.
        connection.close(4000);
        this.closed(1006);
        return;
      }
      connection.send('{"action":"ping"}');
    }, this.options.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private receive(text: string): void {
    this.lastFrameAt = Date.now();
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof frame.seq === "number") {
      this.deliver(frame as unknown as SequencedFrame);
      return;
    }
    if (frame.type === "notification.created") {
      // Live only (no seq, never replayed): shown as it comes; nothing to persist. A client
      // that was away reads the notification centre instead.
      this.emit(frame.type, frame);
      this.emit("*", frame);
      return;
    }
    const ref = frame.ref == null ? null : String(frame.ref);
    const data = frame.data as Record<string, unknown> | undefined;
    if (frame.type === "ack" && ref === "resume") {
      this.attempt = 0;
      this.emit("ready", data as { replayed: number; seq: number });
    } else if (frame.type === "error" && ref === "resume") {
      this.emit("resync", data as { code: string; message: string });
    } else if ((frame.type === "ack" || frame.type === "error") && ref && this.pending.has(ref)) {
      const pending = this.pending.get(ref)!;
      this.pending.delete(ref);
      clearTimeout(pending.timer);
      if (frame.type === "ack") pending.resolve(data);
      else pending.reject(new SocketActionError(String(data?.code), String(data?.message)));
    }
  }

  private deliver(frame: SequencedFrame): void {
    const last = this.lastSeq ?? 0;
    // Seqs only grow and the server replays in order: anything at or below the last one handled
    // was already shown (a replay overlapping a live frame, or a second socket's resume).
    if (frame.seq <= last) return;
    this.emit(frame.type, frame);
    this.emit("*", frame);
    this.options.store.set(this.options.storeKey, String(frame.seq));
  }

  private closed(code: number): void {
    this.connection = null;
    this.teardown("socket_closed");
    this.emit("state", "closed");
    if (code === CLOSE_CODES["4401"] || code === CLOSE_CODES["4403"]) {
      this.stopped = true;
      this.emit("sessionLost", { code, reason: code === CLOSE_CODES["4403"] ? "banned" : "unauthenticated" });
      return;
    }
    if (this.stopped) return;
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.attempt);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => this.connectNow(), Math.round(this.options.random() * ceiling));
  }

  private teardown(code: string): void {
    this.open = false;
    this.stopHeartbeat();
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new SocketActionError(code, "The socket closed before the answer."));
      this.pending.delete(id);
    }
  }

  private emit(type: string, value: unknown): void {
    for (const handler of this.handlers.get(type) ?? []) {
      try {
        (handler as Handler<unknown>)(value);
      } catch (error) {
        // One page's failing handler must not stop the others, nor the seq from advancing.
        console.error(`handler for ${type} failed`, error);
      }
    }
  }
}
