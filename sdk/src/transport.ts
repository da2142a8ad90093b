/** How the client talks HTTP: injected, so the same client runs on `wx.request` in the
 * mini-program, `fetch` in Node, or whatever Taro / uni-app provide. */
export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  headers: Record<string, string>;
  /** JSON text, or undefined for no body. */
  body?: string;
}

export interface HttpResponse {
  status: number;
  /** The parsed JSON body (or the raw text when it is not JSON). */
  body: unknown;
}

/** A Blob (Node 18+, browsers), typed by its shape so a mini-program needs no DOM types. */
export interface BlobLike {
  readonly size: number;
  readonly type: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** `fetch`'s shape, for the same reason. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: unknown },
) => Promise<{ status: number; text(): Promise<string> }>;

/** A multipart upload of one file field. `filePath` is a mini-program temp path
 * (`wx.uploadFile`); `file` a Blob (fetch). */
export interface UploadRequest {
  url: string;
  headers: Record<string, string>;
  field: string;
  filePath?: string;
  file?: BlobLike;
  fileName?: string;
}

export interface Transport {
  request(request: HttpRequest): Promise<HttpResponse>;
  upload(request: UploadRequest): Promise<HttpResponse>;
}

function parse(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** `fetch` (Node 18+, browsers, tests). */
export function fetchTransport(fetchImpl?: FetchLike): Transport {
  const runtime = globalThis as unknown as { fetch: FetchLike; FormData: new () => { append(name: string, value: unknown, fileName?: string): void } };
  const send = fetchImpl ?? ((url, init) => runtime.fetch(url, init));
  return {
    async request({ method, url, headers, body }) {
      const response = await send(url, { method, headers, body });
      return { status: response.status, body: parse(await response.text()) };
    },
    async upload({ url, headers, field, file, fileName }) {
      if (!file) throw new TypeError("fetchTransport uploads a Blob: pass `file`");
      const form = new runtime.FormData();
      form.append(field, file, fileName ?? "upload");
      const response = await send(url, { method: "POST", headers, body: form });
      return { status: response.status, body: parse(await response.text()) };
    },
  };
}

/** The mini-program's `wx.request` / `wx.uploadFile`. */
export function wxTransport(api: WechatMiniprogram.Wx = wx): Transport {
  return {
    request({ method, url, headers, body }) {
      // wx.request has no PATCH: the server reads POST + this header as one (under /api/).
      const header = method === "PATCH" ? { ...headers, "X-HTTP-Method-Override": "PATCH" } : headers;
      return new Promise((resolve, reject) => {
        api.request({
          url,
          method: method === "PATCH" ? "POST" : method,
          header,
          data: body,
          // Parse ourselves: an error page is not JSON and must not throw inside wx.
          dataType: "其他",
          responseType: "text",
          success: (result) => resolve({ status: result.statusCode, body: parse(String(result.data ?? "")) }),
          fail: (error) => reject(new Error(error.errMsg)),
        });
      });
    },
    upload({ url, headers, field, filePath }) {
      if (!filePath) return Promise.reject(new TypeError("wxTransport uploads a temp file: pass `filePath`"));
      return new Promise((resolve, reject) => {
        api.uploadFile({
          url,
          filePath,
          name: field,
          header: headers,
          success: (result) => resolve({ status: result.statusCode, body: parse(result.data) }),
          fail: (error) => reject(new Error(error.errMsg)),
        });
      });
    },
  };
}
