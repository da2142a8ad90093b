// A listing page: the detail, a bargain over the live socket, buying outright.
import { ApiError, type LiveSocket, type Schemas, wxLiveSocket } from "@marketplace/miniprogram-sdk";
import type { AppData } from "../../app";

const { client } = getApp<AppData>();
let socket: LiveSocket | null = null;

Page({
  data: { listing: null as Schemas["ListingDetailOut"] | null, offer: null as Schemas["OfferOut"] | null, error: "" },

  async onLoad(query: Record<string, string | undefined>) {
    const listing = await client.listing(Number(query.id));
    this.setData({ listing });
    socket = wxLiveSocket(client);
    socket.on("offer.countered", (frame) => {
      if (frame.data.listing_id === listing.id) this.setData({ offer: frame.data });
    });
    socket.on("offer.accepted", (frame) => {
      if (frame.data.order_no) wx.navigateTo({ url: `/pages/order/order?no=${frame.data.order_no}` });
    });
    socket.start();
  },

  onUnload() {
    socket?.stop();
  },

  async onOffer(event: WechatMiniprogram.CustomEvent<{ value: string }>) {
    const listing = this.data.listing!;
    try {
      const offer = await socket!.action("offer.make", { listing_id: listing.id, price: Math.round(Number(event.detail.value) * 100) });
      this.setData({ offer });
    } catch (error) {
      this.setData({ error: error instanceof Error ? error.message : String(error) });
    }
  },

  async onBuy() {
    const listing = this.data.listing!;
    const [address] = await client.addresses();
    try {
      const order = await client.createOrder({ listing_id: listing.id, address_id: address.id });
      wx.navigateTo({ url: `/pages/order/order?no=${order.order_no}` });
    } catch (error) {
      if (error instanceof ApiError && error.code === "listing_reserved") this.setData({ error: "已被别人抢先下单" });
      else throw error;
    }
  },
});
