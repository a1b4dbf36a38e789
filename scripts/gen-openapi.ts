// Writes docs/openapi.json from the route table; CI regenerates it and fails on a difference.
import { writeFileSync } from "node:fs";
import { openApiDocument } from "../src/net/openapi.ts";

writeFileSync("docs/openapi.json", `${JSON.stringify(openApiDocument(), null, 2)}\n`);
