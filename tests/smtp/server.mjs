// A real SMTP server for authauth's tests: accepts every message on a loopback port (no TLS, no
// authentication: a local relay) and stores each one, exactly as received, as `<n>.eml` in
// SMTP_DIR — written to a temporary name and renamed, so a reader never sees half a message.
//
// SMTP_PORT: the port (0: any free one). Prints `READY <port>` once it listens.
import { SMTPServer } from "smtp-server";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.SMTP_DIR;
if (!dir) {
  console.error("SMTP_DIR is required");
  process.exit(2);
}
mkdirSync(dir, { recursive: true });
let n = 0;

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS", "AUTH"],
  logger: false,
  onData(stream, session, callback) {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => {
      n += 1;
      const name = `${Date.now()}-${process.pid}-${n}`;
      const tmp = join(dir, `.${name}.tmp`);
      const headers = `X-Test-Envelope-To: ${session.envelope.rcptTo.map((r) => r.address).join(", ")}\r\n`;
      writeFileSync(tmp, Buffer.concat([Buffer.from(headers), ...chunks]));
      renameSync(tmp, join(dir, `${name}.eml`));
      callback();
    });
  },
});

server.on("error", (e) => {
  console.error(`smtp server error: ${e.message}`);
  process.exit(1);
});
server.listen(Number(process.env.SMTP_PORT || 0), "127.0.0.1", () => {
  console.log(`READY ${server.server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
