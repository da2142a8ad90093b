import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  // The mini-program's base library runs ES2017-era JavaScript on older phones.
  target: "es2017",
});
