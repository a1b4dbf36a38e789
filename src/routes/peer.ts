import type { Elysia } from "elysia";
import type { MembershipRuntime } from "../membership/runtime.ts";
import { VERIFIED_PEER_HEADER } from "../net/gate.ts";
import { ROUTES } from "../net/route-table.ts";
import { serve } from "./define.ts";
import { RouteRefusal } from "./errors.ts";

/** Node-to-node traffic; the gate has already checked the signature. */
export function peerRoutes(app: Elysia, membership: MembershipRuntime): void {
  serve(app, ROUTES.peerSwim, ({ body, request }) => {
    const signer = request.headers.get(VERIFIED_PEER_HEADER);
    const forged = body.messages.find((m) => m.from !== signer);
    if (forged) throw new RouteRefusal(403, "forbidden", `message from "${forged.from}" signed by "${signer}"`);
    return { messages: membership.receive(body.messages) };
  });
}
