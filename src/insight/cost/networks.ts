/**
 * Which configured network (insight.cost.egress.networks) a client address is in: the first whose
 * CIDRs contain it. node:net's BlockList does the matching (the same one webhooks' address checks
 * use); an IPv4-mapped IPv6 address (::ffff:10.0.0.1, as a dual-stack socket reports IPv4 peers)
 * is matched as the IPv4 address it carries.
 */
import { BlockList, isIP } from 'node:net';
import { embeddedIpv4 } from '../webhooks/address.ts';
import type { PriceModel } from '../../meta/cost.ts';

export type NetworkOf = (address: string) => string | undefined;

export function networkClassifier(networks: PriceModel['egress']['networks']): NetworkOf {
  const lists = networks.map((n) => {
    const list = new BlockList();
    for (const cidr of n.cidrs) {
      const [address = '', prefix] = cidr.split('/');
      const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
      if (prefix === undefined) list.addAddress(address, family);
      else list.addSubnet(address, Number(prefix), family);
    }
    return { name: n.name, list };
  });
  return (address) => {
    if (lists.length === 0) return undefined;
    const family = isIP(address);
    if (family === 0) return undefined;
    const v4 = family === 6 ? embeddedIpv4(address) : address;
    for (const { name, list } of lists) {
      if (v4 !== undefined ? list.check(v4, 'ipv4') : list.check(address, 'ipv6')) return name;
    }
    return undefined;
  };
}
