/** What only the mini-program itself can do, wrapped around the client. Each helper takes the
 * `wx` object (the global one by default) so it can be faked in tests or swapped for Taro's. */
import type { MarketplaceClient, Schemas } from "./client";
import { ApiError } from "./errors";
import { LiveSocket, type LiveSocketOptions, wxSocketFactory } from "./socket";
import { wxStore } from "./store";

/** A fresh `wx.login` code (valid for one sign-in, five minutes). */
export function loginCode(api: WechatMiniprogram.Wx = wx): Promise<string> {
  return new Promise((resolve, reject) => {
    api.login({
      success: (result) => (result.code ? resolve(result.code) : reject(new Error("wx.login returned no code"))),
      fail: (error) => reject(new Error(error.errMsg)),
    });
  });
}

/** `wx.login` → POST /api/auth/wechat-login; the token is kept by the client's store. */
export async function signInWithWechat(
  client: MarketplaceClient,
  profile: Omit<Schemas["LoginIn"], "code"> = {},
  api: WechatMiniprogram.Wx = wx,
) {
  return client.signIn(await loginCode(api), profile);
}

/** `<button open-type="getPhoneNumber" bindgetphonenumber="onPhone">`: pass the event. */
export async function bindPhoneFromButton(
  client: MarketplaceClient,
  event: { detail: { code?: string; errMsg?: string } },
) {
  const code = event.detail.code;
  if (!code) throw new ApiError(0, "phone_denied", event.detail.errMsg ?? "The user did not share a phone number.");
  return client.bindPhone(code);
}

export class PaymentCancelled extends Error {
  constructor(message = "The user closed the payment sheet.") {
    super(message);
    this.name = "PaymentCancelled";
  }
}

/**
 * Pays an order: POST /pay for `pay_params`, then `wx.requestPayment`. The order moves to
 * `awaiting_video` when WeChat Pay tells the server (an `order.status_changed` event), not
 * when this resolves: show "paid, confirming…" until the event arrives.
 */
export async function payOrder(client: MarketplaceClient, orderNo: string, api: WechatMiniprogram.Wx = wx) {
  const { pay_params: params } = await client.payOrder(orderNo);
  await new Promise<void>((resolve, reject) => {
    api.requestPayment({
      timeStamp: params.timeStamp,
      nonceStr: params.nonceStr,
      package: params.package,
      signType: params.signType as "RSA",
      paySign: params.paySign,
      success: () => resolve(),
      fail: (error) => reject(/cancel/.test(error.errMsg) ? new PaymentCancelled() : new Error(error.errMsg)),
    });
  });
}

/** Confirms a merchant transfer (a withdrawal to the WeChat balance) with the withdrawal's
 * `transfer`: `{mchId: transfer.mch_id, appId: transfer.app_id, package: transfer.package_info}`
 * (docs/payout.md). The withdrawal becomes `paid` when WeChat tells the server, not when this
 * resolves: wait for `withdrawal.updated`. */
export function confirmMerchantTransfer(
  params: { mchId: string; appId: string; package: string; openId?: string },
  api: WechatMiniprogram.Wx = wx,
): Promise<void> {
  return new Promise((resolve, reject) => {
    api.requestMerchantTransfer({
      ...params,
      success: () => resolve(),
      fail: (error: { errMsg: string }) => reject(new Error(error.errMsg)),
    } as unknown as Parameters<WechatMiniprogram.Wx["requestMerchantTransfer"]>[0]);
  });
}

/** `<button open-type="chooseAvatar" bindchooseavatar="onAvatar">`: the chosen temp file becomes
 * the user's avatar (POST /api/me/avatar stores a square copy of its own). */
export function uploadChosenAvatar(client: MarketplaceClient, event: { detail: { avatarUrl: string } }) {
  return client.uploadAvatar({ filePath: event.detail.avatarUrl });
}

/** Asks for subscribe-message consent (call from a tap): the server sends these templates only
 * when the user has no socket open. Returns the templates the user accepted. */
export function requestSubscribeConsent(templateIds: string[], api: WechatMiniprogram.Wx = wx): Promise<string[]> {
  return new Promise((resolve, reject) => {
    api.requestSubscribeMessage({
      tmplIds: templateIds,
      success: (result) => resolve(templateIds.filter((id) => (result as Record<string, unknown>)[id] === "accept")),
      fail: (error) => reject(new Error(error.errMsg)),
    });
  });
}

/** The live socket on `wx.connectSocket`, its seq in `wx.setStorageSync`, per user. */
export function wxLiveSocket(
  client: MarketplaceClient,
  options: Partial<LiveSocketOptions> = {},
  api: WechatMiniprogram.Wx = wx,
): LiveSocket {
  return new LiveSocket({
    url: client.socketUrl,
    token: () => client.token,
    connect: wxSocketFactory(api),
    store: wxStore(api),
    storeKey: `marketplace.seq.${client.user?.id ?? "anonymous"}`,
    initialSeq: async () => (await client.events(0, 1)).latest_seq,
    ...options,
  });
}
