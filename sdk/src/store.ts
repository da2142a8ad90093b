/** Where the SDK keeps what must survive a cold start: the token and the last event seq. */
export interface KeyValueStore {
  get(key: string): string | null | undefined;
  set(key: string, value: string): void;
  remove(key: string): void;
}

export function memoryStore(initial: Record<string, string> = {}): KeyValueStore {
  const values = new Map(Object.entries(initial));
  return {
    get: (key) => values.get(key),
    set: (key, value) => void values.set(key, value),
    remove: (key) => void values.delete(key),
  };
}

/** `wx.setStorageSync`: synchronous, so a seq is on disk before the next frame is handled. */
export function wxStore(api: WechatMiniprogram.Wx = wx): KeyValueStore {
  return {
    get: (key) => {
      const value: unknown = api.getStorageSync(key);
      return typeof value === "string" && value !== "" ? value : null;
    },
    set: (key, value) => api.setStorageSync(key, value),
    remove: (key) => api.removeStorageSync(key),
  };
}
