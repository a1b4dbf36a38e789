import type { Elysia } from "elysia";
import { ROUTES } from "../net/route-table.ts";
import type { Failpoints } from "../node/failpoints.ts";
import { serveFileRange } from "../sync/file-server.ts";
import type { SyncService } from "../sync/service.ts";
import { serve } from "./define.ts";
import { found, RouteRefusal } from "./errors.ts";

/** Data sync: operators read manifests and sessions and start a round; peers fetch manifests and file ranges. */
export function syncRoutes(
  app: Elysia,
  deps: { sync: SyncService; failpoints: Failpoints; onSent: (bytes: number) => void },
): void {
  const { sync } = deps;
  serve(app, ROUTES.manifest, ({ query }) => {
    if (query.category) {
      const manifest = sync.manifest(query.category);
      return found(manifest, "no_such_category", `no data category "${query.category}" in cluster.toml`);
    }
    return { status: sync.status().categories };
  });
  serve(app, ROUTES.syncStatus, () => sync.status());
  serve(app, ROUTES.syncSession, ({ params }) =>
    found(sync.session(params.id), "no_such_session", `no sync session "${params.id}" on this node`),
  );
  serve(app, ROUTES.syncStart, async ({ body }) => {
    if (body.category && !sync.manifest(body.category)) {
      throw new RouteRefusal(422, "invalid", `no data category "${body.category}" in cluster.toml`, "body.category");
    }
    return { sessions: await sync.now(body.category) };
  });

  serve(app, ROUTES.peerManifest, ({ params }) =>
    found(sync.manifest(params.category), "no_such_category", `no data category "${params.category}" here`),
  );
  const noFile = (sha256: string) => `no file ${sha256} on this node`;
  serve(app, ROUTES.peerFilePieces, ({ params }) =>
    found(sync.pieceMap(params.sha256), "no_such_file", noFile(params.sha256)),
  );
  serve(app, ROUTES.peerFile, async ({ params, request }) => {
    const target = found(await sync.served(params.sha256), "no_such_file", noFile(params.sha256));
    const response = await serveFileRange(request, target, { uploads: sync.uploads, rate: sync.uploadRate });
    const length = Number(response.headers.get("content-length") ?? 0);
    if (response.ok) deps.onSent(length);
    if (response.ok && deps.failpoints.fire("sync.corrupt-served-piece")) return corrupt(response);
    return response;
  });
}

/** The failpoint's wrong chunk: the same bytes with one flipped, as a faulty link or disk would deliver. */
async function corrupt(response: Response): Promise<Response> {
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length > 0) bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
  return new Response(bytes, { status: response.status, headers: response.headers });
}
