// NoCloud network-config, version 2: the NIC is matched by its MAC (interface names differ between
// boards and kernels) and renamed to the inventory's interface name; DHCP or static from the inventory.
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import { toYaml, type YamlValue } from '../yaml.ts';

export function networkConfigDoc(d: Pick<ResolvedDevice, 'network' | 'mac'>): { [k: string]: YamlValue } {
  const n = d.network;
  const nic: { [k: string]: YamlValue } = { match: { macaddress: d.mac }, 'set-name': n.interface };
  if (n.mode === 'dhcp') {
    nic.dhcp4 = true;
    if (n.dns.length || n.search.length) nic.nameservers = { addresses: n.dns, search: n.search };
  } else {
    nic.dhcp4 = false;
    nic.addresses = [n.address];
    nic.routes = [{ to: '0.0.0.0/0', via: n.gateway }];
    nic.nameservers = { addresses: n.dns, search: n.search };
  }
  return { version: 2, ethernets: { [n.interface]: nic } };
}

export function renderNetworkConfig(d: Pick<ResolvedDevice, 'network' | 'mac' | 'id'>): string {
  return `# network-config for ${d.id} (NoCloud, version 2) - written by edgeforge\n` + toYaml(networkConfigDoc(d));
}
