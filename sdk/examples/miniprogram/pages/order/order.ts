// An order page: live status over the socket, the pay button, phone binding, avatar, consent.
import {
  bindPhoneFromButton,
  type LiveSocket,
  PaymentCancelled,
  payOrder,
  requestSubscribeConsent,
  type Schemas,
  uploadChosenAvatar,
  wxLiveSocket,
} from "@marketplace/miniprogram-sdk";
import type { AppData } from "../../app";

const { client } = getApp<AppData>();
// The template ids the server sends offline notices with (configured on the server too).
const TEMPLATES = ["tpl-video-ready", "tpl-shipping"];
let socket: LiveSocket | null = null;

Page({
  data: { order: null as Schemas["OrderOut"] | null, tracking: null as Schemas["TrackingOut"] | null, note: "" },

  async onLoad(query: Record<string, string | undefined>) {
    const orderNo = query.no!;
    this.setData({ order: await client.order(orderNo) });
    socket = wxLiveSocket(client);
    socket.on("order.status_changed", (frame) => {
      if (frame.data.order_no === orderNo) this.setData({ order: frame.data, note: "" });
    });
    socket.on("order.video_ready", (frame) => {
      if (frame.data.order_no === orderNo) this.setData({ order: frame.data, note: "卖家上传了视频" });
    });
    socket.on("order.shipping_update", (frame) => {
      if (frame.data.tracking_no === this.data.order?.tracking_no) this.setData({ tracking: frame.data });
    });
    socket.on("resync", async () => this.setData({ order: await client.order(orderNo) }));
    socket.on("sessionLost", () => wx.reLaunch({ url: "/pages/listing/listing" }));
    socket.start();
  },

  onUnload() {
    socket?.stop();
  },

  async onPay() {
    try {
      await payOrder(client, this.data.order!.order_no);
      // The order moves when WeChat Pay tells the server: the socket brings the new status.
      this.setData({ note: "支付成功，确认中…" });
    } catch (error) {
      if (error instanceof PaymentCancelled) this.setData({ note: "已取消支付" });
      else throw error;
    }
  },

  async onConsent() {
    await requestSubscribeConsent(TEMPLATES);
  },

  async onPhone(event: WechatMiniprogram.CustomEvent<{ code?: string; errMsg?: string }>) {
    await bindPhoneFromButton(client, event);
  },

  async onAvatar(event: WechatMiniprogram.CustomEvent<{ avatarUrl: string }>) {
    await uploadChosenAvatar(client, event);
  },

  async onConfirmReceipt() {
    this.setData({ order: await client.confirmReceipt(this.data.order!.order_no) });
  },
});
