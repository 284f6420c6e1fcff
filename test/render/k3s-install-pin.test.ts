// The online K3s install: install.sh from the pinned release's own tag, a placeholder pin that is visibly one
// and warned about, and an explicit URL that wins.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { k3sInstallPinProblem, k3sInstallScriptUrl, PLACEHOLDER_SHA256 } from '../../scripts/render/k3s/install.ts';

const example = readFileSync('inventory/example.yaml');

describe('K3s install script pin', () => {
  it("defaults to the pinned version's tag, not the moving get.k3s.io", () => {
    const fleet = loadInventoryBytes(example, 'inventory/example.yaml');
    expect(k3sInstallScriptUrl(fleet.k3s)).toBe(`https://raw.githubusercontent.com/k3s-io/k3s/${fleet.k3s.version}/install.sh`);
  });

  it('the example carries the all-zeros placeholder and gets a warning naming the command that fills it in', () => {
    const fleet = loadInventoryBytes(example, 'inventory/example.yaml');
    expect(fleet.k3s.install.mode === 'online' && fleet.k3s.install.installScriptSha256).toBe(PLACEHOLDER_SHA256);
    const w = k3sInstallPinProblem(fleet);
    expect(w).toContain('placeholder');
    expect(w).toContain(`curl -sfL https://raw.githubusercontent.com/k3s-io/k3s/${fleet.k3s.version}/install.sh | sha256sum`);
  });

  it('a real pin and an explicit URL: no warning, the URL is used as given', () => {
    const text = example.toString().replace(`"${PLACEHOLDER_SHA256}"`, `${'ab'.repeat(32)}\n    installScriptUrl: https://mirror.example/k3s/install.sh`);
    const fleet = loadInventoryBytes(Buffer.from(text), 'pinned.yaml');
    expect(k3sInstallPinProblem(fleet)).toBeUndefined();
    expect(k3sInstallScriptUrl(fleet.k3s)).toBe('https://mirror.example/k3s/install.sh');
  });
});
