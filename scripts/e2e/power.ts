// Ending a boot of the guest the way a person would: `systemctl poweroff` over SSH, and when that does not stop
// it (or the guest cannot be reached), the power button.
import type { Vm } from './qemu.ts';
import { sshRun, type SshTarget } from './ssh.ts';

/** Powers the guest off (over SSH when `target` is given) and waits for qemu to exit; `log` hears what went wrong. */
export async function powerOff(vm: Vm, target: SshTarget | undefined, log: (line: string) => void = () => {}): Promise<void> {
  const r = target ? await sshRun(target, 'sudo -n systemctl poweroff', 30) : { code: 1, stderr: '' };
  if (target && r.code !== 0 && r.code !== 255) log(`poweroff over SSH: exit ${r.code} ${r.stderr.trim()}`);
  try {
    await vm.waitExit(r.code === 0 || r.code === 255 ? 180_000 : 5_000);
  } catch {
    log('no power-off over SSH: pressing the power button (QMP system_powerdown)');
    await vm.powerButton();
    await vm.waitExit(180_000);
  }
}
