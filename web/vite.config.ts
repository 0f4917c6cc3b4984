import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// In `make dev` the app and the API share the dev server's origin: Vite
// proxies /api to the api (KEEL_API_URL), so the refresh cookie
// (SameSite=Strict, Path=/api/v1/auth) and the CSRF check's Origin are the
// same as in production, where the api serves the built app itself.
export default defineConfig({
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: Number(process.env.KEEL_WEB_PORT || 5173),
    strictPort: true,
    proxy: {
      "/api": { target: process.env.KEEL_API_URL || "http://127.0.0.1:8080", changeOrigin: false },
      // The queue monitor (asynqmon) the admin screens open, served by the api.
      "/admin/queues": { target: process.env.KEEL_API_URL || "http://127.0.0.1:8080", changeOrigin: false },
    },
  },
  build: { target: "es2020", sourcemap: false, manifest: true },
  test: { environment: "node" },
});
