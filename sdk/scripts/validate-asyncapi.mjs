// Validates an AsyncAPI document with the official parser: `node scripts/validate-asyncapi.mjs
// <file>` (or stdin). Prints the diagnostics and exits 1 on any error-level one.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const source = readFileSync(process.argv[2] ?? 0, "utf8");
const { document, diagnostics } = await new Parser().parse(source);
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  console.error(`${DiagnosticSeverity[d.severity]} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
if (!document || errors.length > 0) process.exit(1);
console.log(
  JSON.stringify({
    version: document.version(),
    operations: document.operations().all().map((op) => op.id()),
    messages: document.allMessages().all().map((m) => m.id()),
  }),
);
