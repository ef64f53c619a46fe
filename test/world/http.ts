// A static HTTP server over a directory, on 127.0.0.1 (QEMU guests reach it as 10.0.2.2).
// It runs in a child process: the tests drive guests with synchronous commands, which would
// stall a server on this process's event loop while a guest waits for it.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface StaticServer {
  port: number;
  /** Paths requested, in order (for asserting what a client fetched). */
  requests: string[];
  close(): Promise<void>;
}

/** The child: serves argv[1]; prints `port N` once listening, then each requested path. */
const server = `
const { createReadStream, existsSync, statSync } = require('node:fs');
const { createServer } = require('node:http');
const { join, normalize } = require('node:path');
const dir = process.argv[1];
const s = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
  console.log('GET ' + path);
  const file = join(dir, path);
  if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end();
  res.writeHead(200, { 'content-length': statSync(file).size });
  createReadStream(file).pipe(res);
});
s.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log('port ' + s.address().port));
`;

/** Serves `dir` on 127.0.0.1, on `listenPort` when given (else a free one). */
export async function serveDir(dir: string, listenPort = 0): Promise<StaticServer> {
  const child = spawn(process.execPath, ['-e', server, dir, String(listenPort)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const requests: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`static server for ${dir} exited ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('port ')) resolve(Number(line.slice(5)));
      else if (line.startsWith('GET ')) requests.push(line.slice(4));
    });
  });
  return {
    port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        process.removeListener('exit', kill);
        if (child.exitCode !== null) return r();
        child.once('exit', () => r());
        child.kill();
      }),
  };
}
