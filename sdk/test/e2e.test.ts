// A buyer and a seller play the whole flow through the SDK against the real server: sign in,
// publish, staff approve in the admin, bargain over the socket, pay in the sandbox, video, ship,
// receipt, credit, withdrawal; the buyer's app is killed and cold-started in the middle, and
// resume must deliver every missed event exactly once. Every frame is validated against
// GET /api/asyncapi.json.
import { deflateSync, crc32 } from "node:zlib";
import { Parser } from "@asyncapi/parser";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ApiError, memoryStore, type EventFrame, type Transport } from "../src";
import {
  Admin,
  baseUrl,
  captured,
  liveSocket,
  newUser,
  Recorder,
  sandboxAdvanceParcel,
  sandboxPay,
  waitUntil,
} from "./helpers";

function png(width: number, height: number): ArrayBuffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, 0x80)]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const bytes = Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", pixels), chunk("IEND", Buffer.alloc(0))]);
  return new Uint8Array(bytes).buffer;
}

const MP4 = Uint8Array.from([
  ...[0, 0, 0, 0x18],
  ...Buffer.from("ftypmp42"),
  ...[0, 0, 0, 0],
  ...Buffer.from("mp42isom"),
  ...new Array(64).fill(0),
]).buffer;

const seqsOf = (frames: Array<Extract<EventFrame, { seq: number }>>) => frames.map((frame) => frame.seq);

/** A listing with one photo, published and approved by staff in the admin. */
async function publishedListing(
  seller: Awaited<ReturnType<typeof newUser>>,
  fields: { title: string; description: string; price: number },
) {
  const admin = new Admin();
  const staff = inject("staff");
  await admin.logIn(staff.username, staff.password);
  const image = await seller.uploadImage({ file: new Blob([png(40, 40)], { type: "image/png" }) });
  const leaf = (await seller.categories()).flatMap((root) => root.children ?? [])[0];
  const listing = await seller.createListing({ category_id: leaf.id, features: [], image_ids: [image.id], ...fields });
  await admin.action("/admin/marketplace/listing/", "approve_selected", [listing.id]);
  return listing;
}

describe("a sale from listing to payout, through the SDK", () => {
  const sockets: Array<{ stop(): void }> = [];
  afterAll(() => sockets.forEach((socket) => socket.stop()));

  it("plays buyer and seller, and resume after a cold start misses nothing and repeats nothing", async () => {
    const seller = await newUser("seller");
    const buyer = await newUser("buyer");
    const sellerSocket = liveSocket(seller);
    const sellerEvents = new Recorder(sellerSocket);
    sockets.push(sellerSocket);
    const buyerStore = memoryStore(); // what wx.setStorageSync keeps across a cold start
    let buyerSocket = liveSocket(buyer, buyerStore);
    let buyerEvents = new Recorder(buyerSocket);
    sockets.push(buyerSocket);
    const ready = [waitUntil(sellerSocket, "ready"), waitUntil(buyerSocket, "ready")];
    sellerSocket.start();
    buyerSocket.start();
    await Promise.all(ready);

    // Publish: an image, a listing; staff approve it in the admin.
    const image = await seller.uploadImage({ file: new Blob([png(64, 48)], { type: "image/png" }), fileName: "item.png" });
    expect(image.url.startsWith(`${baseUrl}/media/`)).toBe(true); // absolute, from MEDIA_BASE_URL
    const categories = await seller.categories();
    const leaf = categories.flatMap((root) => root.children ?? [])[0];
    const listing = await seller.createListing({
      category_id: leaf.id,
      title: "SDK 测试相机 九成新",
      description: "快门 3000 次。",
      features: [],
      image_ids: [image.id],
      price: 88_800,
    });
    expect(listing.status).toBe("pending_review");
    const admin = new Admin();
    const staff = inject("staff");
    await admin.logIn(staff.username, staff.password);
    await admin.action("/admin/marketplace/listing/", "approve_selected", [listing.id]);
    const reviewed = await sellerEvents.waitFor("listing.reviewed", (frame) => frame.data.id === listing.id);
    expect(reviewed.data.status).toBe("on_sale");
    expect(reviewed.data.images.every((url) => url.startsWith(baseUrl))).toBe(true);

    // The avatar chosen with <button open-type="chooseAvatar">: its temp file, stored squared.
    const withAvatar = await buyer.uploadAvatar({ file: new Blob([png(32, 32)], { type: "image/png" }) });
    expect(withAvatar.avatar_url?.startsWith(baseUrl)).toBe(true);

    // Bargain over the socket: offer, counter, accept.
    await buyer.createAddress({
      name: "阿杰",
      phone: "13800138000",
      province: "上海市",
      city: "上海市",
      district: "浦东新区",
      detail: "张江路 100 号",
      is_default: true,
    });
    const offer = await buyerSocket.action("offer.make", { listing_id: listing.id, price: 70_000 });
    expect(offer.status).toBe("open");
    await sellerEvents.waitFor("offer.created", (frame) => frame.data.id === offer.id);
    // Its notification-centre entry follows live, ready to show, with the id to mark it read.
    const entry = await sellerEvents.waitFor(
      "notification.created",
      (frame) => frame.data.type === "offer.created" && frame.data.target?.id === offer.id,
    );
    expect(entry.data.title).toBe("收到新出价");
    const unread = (await seller.notifications({ unread: true })).items.map((item) => item.id);
    expect(unread).toContain(entry.data.id);
    const countered = await sellerSocket.action("offer.counter", { offer_id: offer.id, price: 80_000 });
    expect(countered.counter_price).toBe(80_000);
    await buyerEvents.waitFor("offer.countered", (frame) => frame.data.id === offer.id);
    // A refused action rejects with the REST error's code.
    await expect(sellerSocket.action("offer.withdraw", { offer_id: offer.id })).rejects.toMatchObject({
      name: "SocketActionError",
    });
    // A dropped connection: the socket reconnects by itself and resumes.
    const resumed = waitUntil(buyerSocket, "ready");
    buyerSocket.drop();
    await resumed;
    const accepted = await buyerSocket.action("offer.accept", { offer_id: offer.id });
    const orderNo = accepted.order_no!;
    expect(orderNo).toBeTruthy();
    await sellerEvents.waitFor("offer.accepted", (frame) => frame.data.id === offer.id);
    await buyerEvents.waitFor("order.status_changed", (frame) => frame.data.order_no === orderNo);
    const seenBeforeKill = buyerEvents.frames.length;

    // The buyer's app is killed; while it is gone the order is paid and the video arrives.
    buyerSocket.stop();
    const { pay_params: payParams } = await buyer.payOrder(orderNo);
    await sandboxPay(payParams.package.replace(/^prepay_id=/, ""));
    await sellerEvents.waitFor("order.status_changed", (frame) => frame.data.order_no === orderNo && frame.data.status === "awaiting_video");
    const withVideo = await seller.uploadVideo(orderNo, { file: new Blob([MP4], { type: "video/mp4" }), fileName: "item.mp4" });
    expect(withVideo.video_url?.startsWith(baseUrl)).toBe(true);
    const missed = (await buyer.events(buyerSocket.lastSeq ?? 0)).items;
    expect(missed.map((item) => item.type)).toEqual(
      expect.arrayContaining(["order.status_changed", "order.video_ready"]),
    );

    // Cold start: a new socket on the same store resumes from the persisted seq.
    buyerSocket = liveSocket(buyer, buyerStore);
    buyerEvents = new Recorder(buyerSocket);
    sockets.push(buyerSocket);
    const again = waitUntil(buyerSocket, "ready");
    buyerSocket.start();
    const replay = await again;
    expect(replay.replayed).toBe(missed.length);
    expect(seqsOf(buyerEvents.sequenced)).toEqual(missed.map((item) => item.seq));
    expect(buyerEvents.sequenced.map((frame) => frame.type)).toEqual(missed.map((item) => item.type));
    expect(seenBeforeKill).toBeGreaterThan(0);

    // Video confirmed, shipped, parcel moves, receipt confirmed, seller credited.
    await buyer.confirmVideo(orderNo);
    const trackingNo = `YT${Date.now() % 10 ** 11}`.padEnd(15, "0");
    await seller.ship(orderNo, { tracking_no: trackingNo, carrier_code: "yuantong" });
    await sandboxAdvanceParcel(trackingNo);
    await buyerEvents.waitFor("order.shipping_update", (frame) => frame.data.tracking_no === trackingNo);
    const completed = await buyer.confirmReceipt(orderNo);
    expect(completed.status).toBe("completed");
    const credited = await sellerEvents.waitFor("wallet.credited", (frame) => frame.data.order_no === orderNo);
    const wallet = await seller.wallet();
    expect(credited.data.wallet.available).toBe(wallet.available);

    // Withdrawal (a money POST with an Idempotency-Key), paid by finance in the admin.
    const account = await seller.createPayoutAccount({ type: "alipay", holder_name: "林小姐", account_no: "13900139000" });
    const withdrawal = await seller.withdraw({ amount: wallet.available, account_id: account.id });
    await admin.action("/admin/marketplace/withdrawal/", "mark_paid", [withdrawal.id], {
      confirm: "1",
      [`reference_${withdrawal.id}`]: "ALIPAY-SDK",
    });
    const paidOut = await sellerEvents.waitFor(
      "withdrawal.updated",
      (frame) => frame.data.id === withdrawal.id && frame.data.status !== "pending",
    );
    expect(paidOut.data.status).toBe("paid");

    // Nobody saw an event twice, and each socket saw its events in seq order.
    for (const frames of [sellerEvents.sequenced, buyerEvents.sequenced]) {
      const seqs = seqsOf(frames);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    }
  });

  it("retries a money POST with the same Idempotency-Key when the answer is lost", async () => {
    const seller = await newUser("seller2");
    const listing = await publishedListing(seller, { title: "只卖一次", description: "测试幂等。", price: 10_000 });
    const buyer = await newUser("buyer2");
    const address = await buyer.createAddress({
      name: "阿杰",
      phone: "13800138000",
      province: "上海市",
      city: "上海市",
      district: "浦东新区",
      detail: "张江路 1 号",
    });
    // The first answer is lost after the server created the order.
    const keys: string[] = [];
    const real = (buyer as unknown as { transport: Transport }).transport;
    let lose = true;
    (buyer as unknown as { transport: Transport }).transport = {
      upload: (request) => real.upload(request),
      async request(request) {
        if (request.url.endsWith("/api/orders") && request.method === "POST") keys.push(request.headers["Idempotency-Key"]);
        const response = await real.request(request);
        if (lose && request.url.endsWith("/api/orders")) {
          lose = false;
          throw new Error("connection reset");
        }
        return response;
      },
    };
    const order = await buyer.createOrder({ listing_id: listing.id, address_id: address.id });
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
    const mine = await buyer.orders({ role: "buyer" });
    expect(mine.items.map((item) => item.order_no)).toEqual([order.order_no]);
  });

  it("talks a deal through and hears a favourite's price drop", async () => {
    const seller = await newUser("chat-seller");
    const buyer = await newUser("chat-buyer");
    const sellerSocket = liveSocket(seller);
    const buyerSocket = liveSocket(buyer);
    sockets.push(sellerSocket, buyerSocket);
    const sellerEvents = new Recorder(sellerSocket);
    const buyerEvents = new Recorder(buyerSocket);
    const ready = [waitUntil(sellerSocket, "ready"), waitUntil(buyerSocket, "ready")];
    sellerSocket.start();
    buyerSocket.start();
    await Promise.all(ready);
    const listing = await publishedListing(seller, { title: "能聊的吉他", description: "九成新。", price: 50_000 });

    const thread = await buyer.openConversation(listing.id);
    const asked = await buyer.sendMessage(thread.id, { kind: "text", text: "还在吗？", client_id: "sdk-ask-1" });
    // A retry with the same client_id is the same message.
    expect((await buyer.sendMessage(thread.id, { kind: "text", text: "还在吗？", client_id: "sdk-ask-1" })).id).toBe(asked.id);
    await sellerEvents.waitFor("message.created", (frame) => frame.data.id === asked.id);
    expect((await seller.notificationSummary()).unread_messages).toBe(1);
    const page = await seller.messages(thread.id);
    expect(page.items.map((message) => message.text)).toContain("还在吗？");
    const read = await seller.markConversationRead(thread.id, asked.id);
    expect(read.unread_count).toBe(0);
    expect((await seller.notificationSummary()).unread_messages).toBe(0);

    // A photo: private. The event says an image is there, with no link; the seller reads the
    // message for a link of their own, which nobody else can use and /media/ does not serve.
    const photo = await buyer.uploadImage({ file: new Blob([png(48, 36)], { type: "image/png" }) });
    const shown = await buyer.sendMessage(thread.id, { kind: "image", image_id: photo.id, client_id: "sdk-photo-1" });
    expect(shown.image_url?.startsWith(`${baseUrl}/api/private-media/`)).toBe(true);
    const created = await sellerEvents.waitFor("message.created", (frame) => frame.data.id === shown.id);
    expect(created.data.image).toEqual({ width: 48, height: 36 });
    expect(created.data.image_url).toBeNull();
    const fresh = await seller.message(thread.id, shown.id);
    expect(fresh.image).toEqual({ width: 48, height: 36 });
    const seen = await fetch(fresh.image_url!);
    expect(seen.status).toBe(200);
    expect(seen.headers.get("cache-control")).toBe("private, no-store");
    expect((await fetch(photo.url)).status).toBe(404);
    const stranger = await newUser("chat-stranger");
    await expect(stranger.message(thread.id, shown.id)).rejects.toMatchObject({ status: 404 });

    const favourite = await buyer.favorite(listing.id);
    expect(favourite.is_favorite).toBe(true);
    expect((await buyer.favorites()).items.map((item) => item.id)).toEqual([listing.id]);
    await seller.updateListing(listing.id, { price: 45_000 });
    const dropped = await buyerEvents.waitFor("listing.price_dropped", (frame) => frame.data.listing.id === listing.id);
    expect(dropped.data).toMatchObject({ old_price: 50_000, new_price: 45_000 });
    const news = await buyer.notifications({ unread: true });
    expect(news.items.some((item) => item.type === "listing.price_dropped")).toBe(true);
    await buyer.markNotificationsRead({ all: true });
    expect((await buyer.notificationSummary()).unread_notifications).toBe(0);
  });

  it("signs in again silently on 401, and the socket stops for good on 4401", async () => {
    const user = await newUser("relogin");
    user.token = "revoked-or-expired";
    const me = await user.me(); // 401 → wx.login (sandbox) → sign in → retried
    expect(me.nickname).toBe("relogin");
    expect(user.token).not.toBe("revoked-or-expired");

    const socket = liveSocket(user);
    const token = user.token;
    (socket as unknown as { options: { token: () => string } }).options.token = () => "not-a-token";
    const lost = new Promise((resolve) => socket.on("sessionLost", resolve));
    let connects = 0;
    socket.on("state", (state) => state === "connecting" && connects++);
    socket.start();
    expect(await lost).toEqual({ code: 4401, reason: "unauthenticated" });
    await new Promise((wait) => setTimeout(wait, 500));
    expect(connects).toBe(1);
    expect(token).toBeTruthy();

    const anonymous = await newUser("anonymous-check");
    anonymous.token = null;
    await expect(anonymous.call("GET", "/api/me", { anonymous: true })).rejects.toBeInstanceOf(ApiError);
  });

  it("serves an AsyncAPI document the parser accepts, and every captured frame matches it", async () => {
    const doc = (await (await fetch(`${baseUrl}/api/asyncapi.json`)).json()) as Record<string, any>;
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc));
    expect(diagnostics.filter((d) => d.severity === 0)).toEqual([]);
    expect(document).toBeTruthy();

    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema({ $id: "asyncapi", components: doc.components });
    const messages = doc.channels.socket.messages as Record<string, { payload: { $ref: string } }>;
    const validator = (key: string) => {
      expect(messages[key], `message ${key}`).toBeTruthy();
      return ajv.getSchema(`asyncapi${messages[key].payload.$ref}`)!;
    };
    const pendingActions = new Map<string, string>();
    const checked = new Set<string>();
    expect(captured.length).toBeGreaterThan(20);
    for (const { direction, text } of captured) {
      const frame = JSON.parse(text);
      let key: string;
      if (direction === "out") {
        key = ["ping", "resume"].includes(frame.action) ? frame.action : `action.${frame.action}`;
        if (frame.id !== undefined) pendingActions.set(String(frame.id), frame.action);
      } else if (typeof frame.seq === "number") {
        key = frame.type;
      } else if (frame.type === "ack") {
        key = `ack.${pendingActions.get(String(frame.ref))}`;
      } else {
        key = frame.type; // pong, error
      }
      const validate = validator(key);
      expect(validate(frame), `${key}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      checked.add(key);
    }
    for (const expected of ["resume", "ack.resume", "action.offer.make", "ack.offer.make", "error", "offer.created", "order.video_ready", "wallet.credited"]) {
      expect(checked).toContain(expected);
    }
  });
});
