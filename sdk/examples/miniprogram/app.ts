// The app: one client for every page, its token in wx storage; a 401 signs in again with wx.login.
import { loginCode, MarketplaceClient, signInWithWechat, wxStore, wxTransport } from "@marketplace/miniprogram-sdk";

export interface AppData {
  client: MarketplaceClient;
}

const client = new MarketplaceClient({
  baseUrl: "https://api.example.com",
  transport: wxTransport(),
  store: wxStore(),
  login: () => loginCode(),
});

App<AppData>({
  client,
  async onLaunch() {
    if (!client.token) await signInWithWechat(client);
    else await client.me();
  },
});
