// `rock-image keys generate`: the project's release key pair, made with real gpg. The public half
// goes under manifests/keys/ (committed; streams name it in publish.trust); the private half goes
// to a file the user names OUTSIDE the project, to be stored as the CI secret and deleted.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ExitCode, ToolError, UsageError } from '../errors.ts';
import { generateKeyPair, showKeysSync } from '../exec/gpg.ts';
import type { Command } from './types.ts';

const NAME = /^[a-z0-9][a-z0-9._-]*$/;
// --quick-gen-key's expire: Nd, Nw, Nm, Ny or an ISO date (gpg(1) of gnupg 2.2.40, --quick-add-key).
const EXPIRE = /^([1-9][0-9]*[dwmy]|[0-9]{4}-[0-9]{2}-[0-9]{2})$/;

const inside = (dir: string, file: string) => {
  const rel = relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
};

/** Writes atomically, creating the file with `mode` (the private key is never world-readable). */
function writeNew(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  renameSync(tmp, path);
}

export const keys: Command = {
  name: 'keys',
  summary: 'make the release GPG key pair: public half under manifests/keys/, private half for CI',
  usage: `
Usage: rock-image keys generate --private-out FILE [--name N] [--uid UID] [--expire E] [--force]

Makes the project's release signing key with gpg in a throwaway home (batch mode, no
passphrase): an RSA-4096 primary key that signs, expiring after E. Writes:
  manifests/keys/N.gpg   the public half, ASCII-armored: commit it, and name it in the streams'
                         publish.trust.gpg-key
  FILE                   the private half, ASCII-armored, mode 0600, OUTSIDE the project: store
                         it as the CI secret SIGNING_KEY (and its fingerprint as SIGNING_KEY_ID),
                         keep an offline copy, then delete it
Nothing is written when either file exists (unless --force) or FILE is inside the project.

Options:
  --private-out FILE   where the private half goes (required; outside the project)
  --name N             key file name under manifests/keys/ (default: rocknsm)
  --uid UID            user ID (default: "RockNSM release signing <N@release.rocknsm.invalid>")
  --expire E           Nd, Nw, Nm, Ny or YYYY-MM-DD (default: 2y); rotate before it passes
  --force              replace existing key files

Exit codes: 0 ok, 64 usage, 69 gpg missing.
`,
  options: {
    'private-out': { type: 'string' },
    name: { type: 'string' },
    uid: { type: 'string' },
    expire: { type: 'string' },
    force: { type: 'boolean' },
  },
  positionals: true,
  async run(ctx, v, positionals) {
    if (positionals.length !== 1 || positionals[0] !== 'generate')
      throw new UsageError(
        "usage: rock-image keys generate --private-out FILE (see 'rock-image keys --help')",
      );
    const name = typeof v.name === 'string' ? v.name : 'rocknsm';
    if (!NAME.test(name)) throw new UsageError(`--name '${name}' must match ${NAME}`);
    const expire = typeof v.expire === 'string' ? v.expire : '2y';
    if (!EXPIRE.test(expire))
      throw new UsageError(`--expire '${expire}' must be Nd, Nw, Nm, Ny or YYYY-MM-DD`);
    const uid =
      typeof v.uid === 'string' ? v.uid : `RockNSM release signing <${name}@release.rocknsm.invalid>`;
    if (typeof v['private-out'] !== 'string') throw new UsageError('--private-out FILE is required');
    const privateOut = resolve(ctx.cwd, v['private-out']);
    const publicOut = join(ctx.root, 'manifests', 'keys', `${name}.gpg`);
    if (inside(ctx.root, privateOut))
      throw new UsageError(
        `--private-out ${privateOut} is inside the project (${ctx.root}): the private key must never be committed; write it elsewhere`,
      );
    for (const f of [publicOut, privateOut])
      if (existsSync(f) && !v.force) throw new UsageError(`${f} exists; give --force to replace it`);

    const key = await generateKeyPair(uid, expire, { run: ctx.run });
    writeNew(privateOut, key.privateKey, 0o600);
    writeNew(publicOut, key.publicKey, 0o644);
    // Checked as the config loader will check it: one public key.
    const shown = showKeysSync(publicOut);
    if ('error' in shown || shown.keys.length !== 1 || shown.keys[0]!.type !== 'pub')
      throw new ToolError(`${publicOut} did not come out as one public key`);
    const expires = shown.keys[0]!.expires;
    const rel = relative(ctx.root, publicOut);
    ctx.stdout.write(
      [
        `fingerprint: ${key.fingerprint}`,
        `public key:  ${rel} (ASCII-armored; commit it)`,
        `private key: ${privateOut} (ASCII-armored, no passphrase, mode 0600; NOT in the project)`,
        `expires:     ${expires ? new Date(expires * 1000).toISOString().slice(0, 10) : 'never'}`,
        '',
        'Next:',
        `  1. Store the private half as the CI secret and the fingerprint beside it:`,
        `       gh secret set SIGNING_KEY < ${privateOut}`,
        `       gh secret set SIGNING_KEY_ID --body ${key.fingerprint}`,
        '  2. Keep an offline copy of the private half (it cannot be recovered), then delete the file.',
        `  3. Name the public half in each stream's publish.trust:`,
        `       trust: {gpg-key: ${rel}, lookaside: <site-url>/signatures}`,
        `     (during a rotation, gpg-key: [old.gpg, ${rel}] until sensors run images that carry both)`,
        `  4. git add ${rel}`,
        '',
      ].join('\n'),
    );
    return ExitCode.ok;
  },
};
