// Host tools of the artifacts stage: what `doctor --install artifacts` installs on each host CPU
// (GRUB's BIOS and x86_64 EFI module packages exist for amd64 only; the arm64 legs skip them).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findTool, toolsFor } from '../../pipeline/exec/tools.ts';

const names = (host: string) => toolsFor(['artifacts'], host).map((t) => t.name);

test('artifacts stage on x86_64 hosts: GRUB for BIOS, x86_64 EFI and arm64 EFI', () => {
  const n = names('x64');
  for (const t of [
    'grub-mkimage',
    'grub i386-pc',
    'grub x86_64-efi',
    'grub arm64-efi',
    'sgdisk',
    'ostree',
    'umoci',
    'mksquashfs',
    'losetup',
    'mkfs.ext4',
  ])
    assert.ok(n.includes(t), t);
});

test('artifacts stage on arm64 hosts: no amd64-only GRUB packages', () => {
  const n = names('arm64');
  assert.not.ok(n.includes('grub i386-pc'));
  assert.not.ok(n.includes('grub x86_64-efi'));
  assert.ok(n.includes('grub arm64-efi'));
  assert.ok(n.includes('grub-mkimage'));
});

test('every artifacts-stage tool of this host is installed (doctor --install artifacts ran)', () => {
  const missing = toolsFor(['artifacts'])
    .filter((t) => !findTool(t))
    .map((t) => `${t.name} (${t.deb})`);
  assert.equal(missing, [], `run 'npx rock-image doctor --install test': missing ${missing.join(', ')}`);
});

test.run();
