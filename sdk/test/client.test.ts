// The REST client's rules, on a fake transport.
import { describe, expect, it } from "vitest";
import { ApiError, MarketplaceClient, memoryStore, type HttpRequest, type HttpResponse, type Transport } from "../src";

function fake(answer: (request: HttpRequest, calls: HttpRequest[]) => HttpResponse | Promise<HttpResponse>) {
  const calls: HttpRequest[] = [];
  const transport: Transport = {
    request: async (request) => {
      calls.push(request);
      return answer(request, calls);
    },
    upload: async () => ({ status: 500, body: null }),
  };
  return { calls, transport };
}

const LOGIN = { token: "fresh", user: { id: 1, nickname: "n", avatar_url: "", phone: "", rating_avg: null, rating_count: 0 } };

describe("MarketplaceClient", () => {
  it("turns error bodies into one ApiError", async () => {
    const { transport } = fake(() => ({ status: 409, body: { code: "listing_reserved", message: "Taken.", errors: [] } }));
    const client = new MarketplaceClient({ baseUrl: "http://x", transport });
    const error = await client.order("M1").catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, code: "listing_reserved", message: "Taken." });
  });

  it("signs in once for many requests that got 401 together, then retries each", async () => {
    let logins = 0;
    const { calls, transport } = fake((request) => {
      if (request.url.endsWith("/api/auth/wechat-login")) {
        logins++;
        return { status: 200, body: LOGIN };
      }
      return request.headers.Authorization === "Bearer fresh"
        ? { status: 200, body: { ok: request.url } }
        : { status: 401, body: { code: "unauthorized", message: "Sign in." } };
    });
    const client = new MarketplaceClient({
      baseUrl: "http://x",
      transport,
      store: memoryStore({ "marketplace.token": "stale" }),
      login: async () => "code",
    });
    const results = await Promise.all([client.wallet(), client.me(), client.addresses()]);
    expect(results).toHaveLength(3);
    expect(logins).toBe(1);
    expect(calls.filter((call) => call.headers.Authorization === "Bearer stale")).toHaveLength(3);
  });

  it("surfaces a second 401 instead of looping", async () => {
    const { calls, transport } = fake((request) =>
      request.url.endsWith("/wechat-login") ? { status: 200, body: LOGIN } : { status: 401, body: { code: "unauthorized", message: "no" } },
    );
    const client = new MarketplaceClient({ baseUrl: "http://x", transport, login: async () => "code" });
    await expect(client.me()).rejects.toMatchObject({ status: 401, code: "unauthorized" });
    expect(calls.filter((call) => call.url.endsWith("/api/me"))).toHaveLength(2);
  });

  it("sends one Idempotency-Key per money POST, the same on its retries, and none elsewhere", async () => {
    let failures = 1;
    const { calls, transport } = fake(() => {
      if (failures-- > 0) return { status: 503, body: { code: "database_busy", message: "busy" } };
      return { status: 200, body: {} };
    });
    const client = new MarketplaceClient({ baseUrl: "http://x", transport });
    await client.payOrder("M1");
    await client.payOrder("M1");
    await client.confirmReceipt("M1");
    const keys = calls.map((call) => call.headers["Idempotency-Key"]);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]); // the retry of the first call
    expect(keys[2]).toBeTruthy();
    expect(keys[2]).not.toBe(keys[0]); // a new call, a new key
    expect(keys[3]).toBeUndefined();
  });
  it("forgets the token once the account is closed, and decodes a scanned code's scene", async () => {
    const { calls, transport } = fake((request) =>
      request.url.includes("/api/me/deletion")
        ? { status: 200, body: { status: "closed", closed_at: "t", erase_after: "t" } }
        : { status: 200, body: { path: "pages/index/index", listing_id: null } },
    );
    const client = new MarketplaceClient({ baseUrl: "http://x", transport, store: memoryStore({ "marketplace.token": "t1" }) });
    await client.closeAccount();
    await client.landing("12%2034");
    expect(calls[0].headers.Authorization).toBe("Bearer t1");
    expect(calls[1].headers.Authorization).toBeUndefined();
    expect(calls[1].url).toBe("http://x/api/share/landing?scene=12%2034");
  });
});
