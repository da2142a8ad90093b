export { MarketplaceClient, type ClientOptions, type Schemas } from "./client";
export { ApiError, SocketActionError } from "./errors";
export {
  LiveSocket,
  webSocketFactory,
  wxSocketFactory,
  type LiveSocketOptions,
  type SessionLost,
  type SocketCallbacks,
  type SocketConnection,
  type SocketFactory,
} from "./socket";
export { memoryStore, wxStore, type KeyValueStore } from "./store";
export {
  fetchTransport,
  wxTransport,
  type BlobLike,
  type FetchLike,
  type HttpRequest, type HttpResponse, type Transport, type UploadRequest } from "./transport";
export {
  bindPhoneFromButton,
  confirmMerchantTransfer,
  loginCode,
  PaymentCancelled,
  payOrder,
  requestSubscribeConsent,
  signInWithWechat,
  uploadChosenAvatar,
  wxLiveSocket,
} from "./wx";
export type * from "./generated/socket";
export { CLOSE_CODES, EVENT_TYPES, SOCKET_ERROR_CODES } from "./generated/socket";
export type { components as RestComponents, paths as RestPaths } from "./generated/rest";
