// Starts the project as `make run` does (migrate, seed_demo, ensure_staff, serve) on a free port
// with embedded defaults and the sandbox, in a temporary MARKETPLACE_VAR_DIR; the real-stack run
// passes SDK_DATABASE_URL / SDK_REDIS_URL (a fresh database is created for the run).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

const repo = resolve(__dirname, "..", "..");
const python = process.env.PYTHON ?? join(repo, ".venv", "bin", "python");

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
    staff: { username: string; password: string };
  }
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

async function waitHealthy(url: string, child: ChildProcess, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((wait) => setTimeout(wait, 200));
  }
  throw new Error(`the server did not answer ${url} within ${seconds} s`);
}

/** A database of its own on the real stack, as the Python suite does per run. */
function realStackEnv(varDir: string): Record<string, string> {
  const database = process.env.SDK_DATABASE_URL;
  const redis = process.env.SDK_REDIS_URL;
  if (!database) return {};
  const name = `marketplace_sdk_${process.pid}_${Date.now().toString(36)}`;
  const url = new URL(database);
  url.pathname = `/${name}`;
  execFileSync(python, ["-c", CREATE_DB, database, name], { cwd: repo, stdio: "inherit" });
  return {
    DATABASE_URL: url.toString(),
    ...(redis ? { REDIS_URL: redis, CACHE_PREFIX: name, CHANNELS_PREFIX: name, HUEY_NAME: name } : {}),
    SDK_DROP_DATABASE: name,
    MARKETPLACE_VAR_DIR: varDir,
  };
}

// Through the server's maintenance database: the URL's own database need not exist.
const MAINTENANCE = `
import sys, psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
params = conninfo_to_dict(sys.argv[1])
params["dbname"] = "postgres"
conn = psycopg.connect(make_conninfo(**params), autocommit=True)
`;
const CREATE_DB = `${MAINTENANCE}conn.execute(f'CREATE DATABASE "{sys.argv[2]}"')\n`;
const DROP_DB = `${MAINTENANCE}conn.execute(f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)')\n`;

export default async function setup(project: TestProject) {
  const varDir = mkdtempSync(join(tmpdir(), "sdk-server-"));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const { DATABASE_URL, REDIS_URL, MARKETPLACE_REQUIRE_REAL_STACK, ...inherited } = process.env;
  void DATABASE_URL, REDIS_URL, MARKETPLACE_REQUIRE_REAL_STACK;
  const stack = realStackEnv(varDir);
  const env = {
    ...inherited,
    MARKETPLACE_VAR_DIR: varDir,
    PUBLIC_BASE_URL: baseUrl,
    PYTHONUNBUFFERED: "1",
    LOG_LEVEL: process.env.SDK_SERVER_LOG_LEVEL ?? "WARNING",
    ...stack,
  };
  const quiet = { cwd: repo, env, stdio: ["ignore", "ignore", "inherit"] as ("ignore" | "inherit")[] };
  execFileSync(python, ["manage.py", "migrate", "--noinput"], quiet);
  execFileSync(python, ["manage.py", "seed_demo"], quiet);
  execFileSync(python, ["manage.py", "ensure_staff"], quiet);
  // The server's log goes to a file (SDK_SERVER_LOG=inherit shows it live); printed on failure.
  const logPath = join(varDir, "server.log");
  const log = process.env.SDK_SERVER_LOG === "inherit" ? "inherit" : openSync(logPath, "a");
  const child = spawn(python, ["manage.py", "serve", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: repo,
    env,
    stdio: ["ignore", log, log],
  });
  try {
    await waitHealthy(`${baseUrl}/healthz`, child, 60);
  } catch (error) {
    if (log !== "inherit") console.error(readFileSync(logPath, "utf8").slice(-5000));
    child.kill("SIGKILL");
    throw error;
  }
  project.provide("baseUrl", baseUrl);
  project.provide("staff", {
    username: process.env.DEMO_STAFF_USER ?? "admin",
    password: process.env.DEMO_STAFF_PASSWORD ?? "admin-demo-2026",
  });

  return async () => {
    child.kill("SIGTERM");
    await new Promise((done) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        done(null);
      }, 10_000);
      child.once("exit", () => {
        clearTimeout(timer);
        done(null);
      });
    });
    if (stack.SDK_DROP_DATABASE && process.env.SDK_DATABASE_URL) {
      execFileSync(python, ["-c", DROP_DB, process.env.SDK_DATABASE_URL, stack.SDK_DROP_DATABASE], {
        cwd: repo,
        stdio: "inherit",
      });
    }
    rmSync(varDir, { recursive: true, force: true });
  };
}
