import type { components } from "./generated/rest";
import { ApiError } from "./errors";
import type { KeyValueStore } from "./store";
import { memoryStore } from "./store";
import type { BlobLike, HttpRequest, HttpResponse, Transport, UploadRequest } from "./transport";

export type Schemas = components["schemas"];
type Query = Record<string, string | number | boolean | null | undefined>;

export interface ClientOptions {
  /** The server's origin, e.g. `https://api.example.com` (paths start with `/api/`). */
  baseUrl: string;
  transport: Transport;
  /** Keeps the token across cold starts (`wxStore()` in the mini-program). */
  store?: KeyValueStore;
  /**
   * A fresh `wx.login` code. When set, a 401 signs in again silently with it and retries the
   * request once before surfacing the error (`loginCode` in ./wx.ts).
   */
  login?: () => Promise<string>;
  /** Transport failures (no answer at all) and 502/503/504 are retried this many times. */
  retries?: number;
  /** The keys sent as `Idempotency-Key` (defaults to a random one per call). */
  idempotencyKey?: () => string;
}

interface CallOptions {
  body?: unknown;
  query?: Query;
  /** A money POST: one `Idempotency-Key` for the call, the same on every retry. */
  idempotent?: boolean;
  /** No token, and no re-login on 401 (sign-in itself). */
  anonymous?: boolean;
}

const TOKEN_KEY = "marketplace.token";
const RETRY_STATUSES = new Set([502, 503, 504]);

function randomKey(): string {
  const random = Math.random().toString(36).slice(2, 12);
  return `${Date.now().toString(36)}-${random}-${Math.random().toString(36).slice(2, 12)}`;
}

/** The typed REST client: one method per endpoint the mini-program uses, plus `call()`. */
export class MarketplaceClient {
  readonly baseUrl: string;
  private readonly transport: Transport;
  private readonly store: KeyValueStore;
  private readonly login?: () => Promise<string>;
  private readonly retries: number;
  private readonly newKey: () => string;
  private relogin: Promise<void> | null = null;
  /** The signed-in user (after `signIn`, or `me()`). */
  user: Schemas["UserOut"] | null = null;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.transport = options.transport;
    this.store = options.store ?? memoryStore();
    this.login = options.login;
    this.retries = options.retries ?? 1;
    this.newKey = options.idempotencyKey ?? randomKey;
  }

  get token(): string | null {
    return this.store.get(TOKEN_KEY) ?? null;
  }

  set token(value: string | null) {
    if (value) this.store.set(TOKEN_KEY, value);
    else this.store.remove(TOKEN_KEY);
  }

  /** The socket URL of this server (`ws://` or `wss://` + `/ws/`). */
  get socketUrl(): string {
    return this.baseUrl.replace(/^http/, "ws") + "/ws/";
  }

  // --- the one request path --------------------------------------------------------------

  async call<T>(method: HttpRequest["method"], path: string, options: CallOptions = {}): Promise<T> {
    const key = options.idempotent ? this.newKey() : undefined;
    let reloggedIn = false;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { Accept: "application/json" };
      if (options.body !== undefined || method !== "GET") headers["Content-Type"] = "application/json";
      if (!options.anonymous && this.token) headers.Authorization = `Bearer ${this.token}`;
      if (key) headers["Idempotency-Key"] = key;
      let response: HttpResponse;
      try {
        response = await this.transport.request({
          method,
          url: this.url(path, options.query),
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
        });
      } catch (error) {
        if (attempt < this.retries) continue;
        throw new ApiError(0, "network_error", error instanceof Error ? error.message : String(error));
      }
      if (response.status === 401 && !options.anonymous && this.login && !reloggedIn) {
        reloggedIn = true;
        await this.silentRelogin();
        attempt--; // the re-login retry is not a transport retry
        continue;
      }
      if (RETRY_STATUSES.has(response.status) && attempt < this.retries) continue;
      if (response.status >= 400) throw ApiError.fromResponse(response.status, response.body);
      return response.body as T;
    }
  }

  async upload<T>(path: string, file: Omit<UploadRequest, "url" | "headers">): Promise<T> {
    const send = () =>
      this.transport.upload({
        ...file,
        url: this.url(path),
        headers: this.token ? { Authorization: `Bearer ${this.token}` } : {},
      });
    let response = await send();
    if (response.status === 401 && this.login) {
      await this.silentRelogin();
      response = await send();
    }
    if (response.status >= 400) throw ApiError.fromResponse(response.status, response.body);
    return response.body as T;
  }

  private url(path: string, query?: Query): string {
    const params = Object.entries(query ?? {})
      .filter(([, value]) => value !== undefined && value !== null)
      .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`);
    return this.baseUrl + path + (params.length ? `?${params.join("&")}` : "");
  }

  /** One re-login at a time: requests that got 401 together wait for the same one. */
  private silentRelogin(): Promise<void> {
    if (!this.relogin) {
      const login = this.login!;
      this.relogin = (async () => {
        this.token = null;
        await this.signIn(await login());
      })().finally(() => {
        this.relogin = null;
      });
    }
    return this.relogin;
  }

  // --- accounts ----------------------------------------------------------------------------

  /** Signs in with a `wx.login` code and keeps the token. */
  async signIn(code: string, profile: Omit<Schemas["LoginIn"], "code"> = {}): Promise<Schemas["LoginOut"]> {
    const result = await this.call<Schemas["LoginOut"]>("POST", "/api/auth/wechat-login", {
      body: { code, ...profile },
      anonymous: true,
    });
    this.token = result.token;
    this.user = result.user;
    return result;
  }

  async signOut(): Promise<void> {
    try {
      await this.call("POST", "/api/auth/logout");
    } finally {
      this.token = null;
      this.user = null;
    }
  }

  /** The code from `<button open-type="getPhoneNumber">`'s event (`detail.code`). */
  bindPhone(code: string) {
    return this.call<Schemas["PhoneOut"]>("POST", "/api/auth/phone", { body: { code } });
  }

  async me() {
    this.user = await this.call<Schemas["UserOut"]>("GET", "/api/me");
    return this.user;
  }

  async updateMe(body: Schemas["ProfileIn"]) {
    this.user = await this.call<Schemas["UserOut"]>("PATCH", "/api/me", { body });
    return this.user;
  }

  /** The avatar from `<button open-type="chooseAvatar">` (its temp file): stored, squared. */
  async uploadAvatar(source: { filePath: string } | { file: BlobLike; fileName?: string }) {
    this.user = await this.upload<Schemas["UserOut"]>("/api/me/avatar", { field: "file", ...source });
    return this.user;
  }

  /** A seller's page: counters, `is_following` for the signed-in reader. */
  publicUser(userId: number) {
    return this.call<Schemas["PublicUserOut"]>("GET", `/api/users/${userId}`);
  }

  sellerListings(userId: number, query: { status?: "on_sale" | "sold"; limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["SellerListingPage"]>("GET", `/api/users/${userId}/listings`, { query });
  }

  sellerReviews(userId: number, query: { limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["SellerReviewPage"]>("GET", `/api/users/${userId}/reviews`, { query });
  }

  follow(userId: number) {
    return this.call<Schemas["FollowOut"]>("POST", `/api/users/${userId}/follow`);
  }

  unfollow(userId: number) {
    return this.call<Schemas["FollowOut"]>("DELETE", `/api/users/${userId}/follow`);
  }

  following(query: { limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["FollowingPage"]>("GET", "/api/me/following", { query });
  }

  /** 想要: idempotent, a double tap favourites once. */
  favorite(listingId: number) {
    return this.call<Schemas["FavoriteOut"]>("POST", `/api/listings/${listingId}/favorite`);
  }

  unfavorite(listingId: number) {
    return this.call<Schemas["FavoriteOut"]>("DELETE", `/api/listings/${listingId}/favorite`);
  }

  favorites(query: { limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["FavoritePage"]>("GET", "/api/me/favorites", { query });
  }

  /** The buyer's live offers and orders in one list (我买到的), newest first. */
  trades(query: { limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["TradePage"]>("GET", "/api/me/trades", { query });
  }

  addresses() {
    return this.call<Schemas["AddressOut"][]>("GET", "/api/addresses");
  }

  createAddress(body: Schemas["AddressIn"]) {
    return this.call<Schemas["AddressOut"]>("POST", "/api/addresses", { body });
  }

  // --- catalog -----------------------------------------------------------------------------

  home() {
    return this.call<Schemas["HomeOut"]>("GET", "/api/home");
  }

  categories() {
    return this.call<Schemas["CategoryOut"][]>("GET", "/api/categories");
  }

  listings(query: Partial<Schemas["ListingQuery"]> = {}) {
    return this.call<Schemas["ListingPage"]>("GET", "/api/listings", { query: query as Query });
  }

  listing(id: number) {
    return this.call<Schemas["ListingDetailOut"]>("GET", `/api/listings/${id}`);
  }

  myListings() {
    return this.call<Schemas["ListingPage"]>("GET", "/api/me/listings");
  }

  createListing(body: Schemas["ListingIn"]) {
    return this.call<Schemas["ListingDetailOut"]>("POST", "/api/listings", { body });
  }

  /** A seller's edit (a lower price tells everyone who favourited it). */
  updateListing(id: number, body: Schemas["ListingPatch"]) {
    return this.call<Schemas["ListingDetailOut"]>("PATCH", `/api/listings/${id}`, { body });
  }

  /** An image for a listing (or the avatar): a temp `filePath` in the mini-program, a Blob in Node. */
  uploadImage(source: { filePath: string } | { file: BlobLike; fileName?: string }) {
    return this.upload<Schemas["UploadOut"]>("/api/uploads/images", { field: "file", ...source });
  }

  // --- orders ------------------------------------------------------------------------------

  createOrder(body: Schemas["OrderIn"]) {
    return this.call<Schemas["OrderOut"]>("POST", "/api/orders", { body, idempotent: true });
  }

  orders(query: { role?: "buyer" | "seller"; status?: Schemas["OrderStatus"]; cursor?: string } = {}) {
    return this.call<Schemas["OrderPage"]>("GET", "/api/orders", { query });
  }

  order(orderNo: string) {
    return this.call<Schemas["OrderOut"]>("GET", `/api/orders/${encodeURIComponent(orderNo)}`);
  }

  /** `pay_params` for `wx.requestPayment` (see `requestPayment` in ./wx.ts). */
  payOrder(orderNo: string) {
    return this.call<Schemas["PayOut"]>("POST", `/api/orders/${encodeURIComponent(orderNo)}/pay`, {
      idempotent: true,
    });
  }

  cancelOrder(orderNo: string, reason = "") {
    return this.orderAction("cancel", orderNo, { reason });
  }

  uploadVideo(orderNo: string, source: { filePath: string } | { file: BlobLike; fileName?: string }) {
    return this.upload<Schemas["OrderOut"]>(`/api/orders/${encodeURIComponent(orderNo)}/video`, {
      field: "file",
      ...source,
    });
  }

  confirmVideo(orderNo: string) {
    return this.orderAction("confirm-video", orderNo);
  }

  rejectVideo(orderNo: string, reason: string) {
    return this.orderAction("reject-video", orderNo, { reason });
  }

  ship(orderNo: string, body: Schemas["ShipIn"]) {
    return this.orderAction("ship", orderNo, body);
  }

  tracking(orderNo: string) {
    return this.call<Schemas["TrackingOut"]>("GET", `/api/orders/${encodeURIComponent(orderNo)}/tracking`);
  }

  confirmReceipt(orderNo: string) {
    return this.orderAction("confirm-receipt", orderNo);
  }

  dispute(orderNo: string, reason: string) {
    return this.orderAction("dispute", orderNo, { reason });
  }

  review(orderNo: string, body: Schemas["ReviewIn"]) {
    return this.call<Schemas["ReviewOut"]>("POST", `/api/orders/${encodeURIComponent(orderNo)}/review`, { body });
  }

  private orderAction(action: string, orderNo: string, body?: unknown) {
    return this.call<Schemas["OrderOut"]>("POST", `/api/orders/${encodeURIComponent(orderNo)}/${action}`, { body });
  }

  // --- negotiation (REST; the socket has the same as actions) -------------------------------

  makeOffer(listingId: number, price: number) {
    return this.call<Schemas["OfferOut"]>("POST", `/api/listings/${listingId}/offers`, { body: { price } });
  }

  offers(query: Record<string, string | number | undefined> = {}) {
    return this.call<Schemas["OfferPage"]>("GET", "/api/offers", { query });
  }

  // --- conversations (REST; the socket has message.send and message.read too) ---------------

  /** Opens (or gets back) my conversation with the seller about a listing. */
  openConversation(listingId: number) {
    return this.call<Schemas["ConversationOut"]>("POST", `/api/listings/${listingId}/conversation`);
  }

  conversations(query: { unread?: boolean; limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["ConversationPage"]>("GET", "/api/conversations", { query });
  }

  conversation(id: number) {
    return this.call<Schemas["ConversationOut"]>("GET", `/api/conversations/${id}`);
  }

  /** Older messages: pass the page's `next_before` as `before`. */
  messages(conversationId: number, query: { before?: number; limit?: number } = {}) {
    return this.call<Schemas["MessagePage"]>("GET", `/api/conversations/${conversationId}/messages`, { query });
  }

  /**
   * One message with a fresh `image_url` for me: `message.created` carries `image` (its size)
   * but never a link, and a link expires after 10 minutes (404 `link_expired`): ask again.
   */
  message(conversationId: number, messageId: number) {
    return this.call<Schemas["MessageOut"]>("GET", `/api/conversations/${conversationId}/messages/${messageId}`);
  }

  /** `client_id` makes a retry return the first message (pick one per message, e.g. a uuid). */
  sendMessage(conversationId: number, body: Schemas["MessageIn"]) {
    return this.call<Schemas["MessageOut"]>("POST", `/api/conversations/${conversationId}/messages`, { body });
  }

  markConversationRead(conversationId: number, upTo: number) {
    return this.call<Schemas["MessageReadOut"]>("POST", `/api/conversations/${conversationId}/read`, {
      body: { up_to: upTo },
    });
  }

  block(userId: number) {
    return this.call<Schemas["BlockOut"]>("POST", `/api/users/${userId}/block`);
  }

  unblock(userId: number) {
    return this.call<Schemas["BlockOut"]>("DELETE", `/api/users/${userId}/block`);
  }

  report(body: Schemas["ReportIn"]) {
    return this.call<Schemas["ReportOut"]>("POST", "/api/reports", { body });
  }

  // --- notification centre -------------------------------------------------------------------

  notifications(query: { unread?: boolean; limit?: number; cursor?: string } = {}) {
    return this.call<Schemas["NotificationPage"]>("GET", "/api/notifications", { query });
  }

  /** `{ids}` or `{all: true}`. */
  markNotificationsRead(body: Schemas["NotificationReadIn"]) {
    return this.call<Schemas["NotificationReadOut"]>("POST", "/api/notifications/read", { body });
  }

  /** The tab badges: unread notifications and unread chat messages. */
  notificationSummary() {
    return this.call<Schemas["SummaryOut"]>("GET", "/api/notifications/summary");
  }

  // --- wallet ------------------------------------------------------------------------------

  wallet() {
    return this.call<Schemas["WalletOut"]>("GET", "/api/wallet");
  }

  walletEntries(query: { cursor?: string } = {}) {
    return this.call<Schemas["WalletEntryPage"]>("GET", "/api/wallet/entries", { query });
  }

  createPayoutAccount(body: Schemas["AccountIn"]) {
    return this.call<Schemas["AccountOut"]>("POST", "/api/wallet/accounts", { body });
  }

  withdraw(body: Schemas["WithdrawalIn"]) {
    return this.call<Schemas["WithdrawalOut"]>("POST", "/api/wallet/withdrawals", { body, idempotent: true });
  }

  withdrawals(query: { cursor?: string } = {}) {
    return this.call<Schemas["WithdrawalPage"]>("GET", "/api/wallet/withdrawals", { query });
  }

  /** One withdrawal; for `to: "wechat_balance"` its `transfer.package_info` appears once WeChat
   * has accepted the transfer (`awaiting_user_confirmation`, also a `withdrawal.updated` event). */
  withdrawal(id: number) {
    return this.call<Schemas["WithdrawalOut"]>("GET", `/api/wallet/withdrawals/${id}`);
  }

  // --- privacy and sharing (docs/privacy.md) -----------------------------------------------

  /** 注销: closes the account at once (409 `deletion_blocked` lists what to finish first); the
   * token stops working, so the client forgets it. */
  async closeAccount(): Promise<Schemas["DeletionOut"]> {
    const result = await this.call<Schemas["DeletionOut"]>("POST", "/api/me/deletion");
    this.token = null;
    this.user = null;
    return result;
  }

  /** Everything stored about me: `status` "pending" while it is built (ask again in a few
   * seconds), then "ready" with a signed `url` for `wx.downloadFile`. */
  myData() {
    return this.call<Schemas["ExportOut"]>("GET", "/api/me/export");
  }

  /** The share card, the mini-program code and the path for `onShareAppMessage`. */
  share(listingId: number) {
    return this.call<Schemas["ShareOut"]>("GET", `/api/listings/${listingId}/share`, { anonymous: true });
  }

  /** Where a scanned code leads: pass `options.scene` as the page received it. */
  landing(scene: string) {
    return this.call<Schemas["LandingOut"]>("GET", "/api/share/landing", {
      query: { scene: decodeURIComponent(scene) },
      anonymous: true,
    });
  }

  // --- events over HTTP --------------------------------------------------------------------

  /** The socket's frames after `since` (the socket's `resume` does the same live). */
  events(since = 0, limit = 100) {
    return this.call<Schemas["EventsPage"]>("GET", "/api/events", { query: { since, limit } });
  }
}
