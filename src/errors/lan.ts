// Errors of private LANs, multicast and network filters (original §11, §6.3): node-side, HTTP 200, errcode -3.
// `ours` where the original had no text.
import { define, E_DEFAULT, type ErrorArg } from './dbc-error.js';

const e = <A extends readonly ErrorArg[] = []>(code: string, text: string, where: string) => define<A>({ code, errcode: E_DEFAULT, http: 200, text, where });

const CIDR_INVALID = 'invalid ip cidr';

export const LanErrors = {
  nameEmpty: e('LAN_NAME_EMPTY', 'network name can not be empty', 'lan/create without network_name'),
  nameInvalid: e(
    'LAN_NAME_INVALID',
    'network name requires a combination of 6 to 10 letters or numbers',
    'lan/create network_name not 6..10 letters or digits',
  ),
  nameExists: e('LAN_NAME_EXISTS', 'network name already existed', 'lan/create with a name in use'),
  vniFull: e('LAN_VNI_FULL', 'network vni is full', 'lan/create with every VNI in use'),
  cidrEmpty: e('LAN_CIDR_EMPTY', 'ip cidr can not be empty', 'lan/create without ip_cidr'),
  /** `invalid ip cidr` (the named cidr* constructors say why) */
  cidrInvalid: e('LAN_CIDR_INVALID', CIDR_INVALID, 'lan/create ip_cidr not a string'),
  cidrDefaultNetwork: e(
    'LAN_CIDR_DEFAULT_NETWORK',
    `${CIDR_INVALID}: 192.168.122.0/24 is the hosts' default network`,
    'ip_cidr inside 192.168.122.0/24 (the original: invalid ip cidr)',
  ),
  cidrFormat: e('LAN_CIDR_FORMAT', `${CIDR_INVALID}: use a.b.c.d/n`, 'ip_cidr not a.b.c.d/n (the original: invalid ip cidr)'),
  cidrPrefix: e<[min: number, max: number]>('LAN_CIDR_PREFIX', `${CIDR_INVALID}: prefix must be /{min} to /{max}`, 'ip_cidr prefix out of range; ours'),
  cidrNotUnicast: e<[cidr: string]>(
    'LAN_CIDR_NOT_UNICAST',
    `${CIDR_INVALID}: {cidr} is not a usable unicast network`,
    'ip_cidr in 0/8, 127/8, 169.254/16 or 224/3; ours',
  ),
  cidrTooSmall: e<[cidr: string, hosts: number]>(
    'LAN_CIDR_TOO_SMALL',
    `${CIDR_INVALID}: {cidr} is too small for {hosts} hosts`,
    'ip_cidr with fewer addresses than the node needs; ours',
  ),
  cidrReserved: e<[cidr: string, what: string, reserved: string]>(
    'LAN_CIDR_RESERVED',
    `${CIDR_INVALID}: {cidr} overlaps {what} {reserved}`,
    'ip_cidr overlapping a network the node uses itself; ours',
  ),
  notExist: e('LAN_NOT_EXIST', 'network name not exist', 'lan/<name>, lan/delete of an unknown LAN'),
  notOwner: e('LAN_NOT_OWNER', 'wallet error, you are not the owner of the network', "lan/delete of another renter's LAN"),
  inUse: e('LAN_IN_USE', 'network is in used, please delete task in the network first', 'lan/delete of a LAN a task uses'),
  /** tasks/start with an unknown network_name (or another renter's) */
  noNetworkInfo: e('LAN_NO_NETWORK_INFO', 'can not find network info', 'tasks/start with an unknown network_name'),
  full: e<[name: string]>('LAN_FULL', 'network {name} has no free address', 'tasks/start on a LAN without a free address; ours'),
  multicastFormat: e('LAN_MULTICAST_FORMAT', 'multicast format: ip:port', 'tasks/start multicast item not ip:port'),
  notMulticast: e('LAN_NOT_MULTICAST', 'address is not a multicast address', 'tasks/start multicast ip outside 224.0.0.0/4'),
  multicastPort: e('LAN_MULTICAST_PORT', 'invalid multicast port', 'tasks/start multicast port out of range'),
  /** ours: groups the node keeps for its own LAN segments in user mode */
  multicastReserved: e<[group: string]>(
    'LAN_MULTICAST_RESERVED',
    'multicast address {group} is reserved by the node',
    'tasks/start multicast group the node uses itself; ours',
  ),
  createFailed: e<[name: string, cidr: string, detail: string]>(
    'LAN_CREATE_FAILED',
    'create lan {name} ({cidr}) failed: {detail}',
    'the host could not set up a LAN (net/driver.ts); ours',
  ),
  vxlanCreateFailed: e<[detail: string]>(
    'LAN_VXLAN_CREATE_FAILED',
    'create vxlan failed: {detail}',
    'bridge mode could not create the vxlan link (the original: create vxlan failed)',
  ),
  bridgeNoFreeAddress: e<[bridge: string, cidr: string]>(
    'LAN_BRIDGE_NO_FREE_ADDRESS',
    'no free address on {bridge} ({cidr})',
    'bridge mode: no free address for a VM; ours',
  ),
};

const FILTER = 'invalid network filter {item}: ';
const FILTERS = 'network_filters is invalid: ';

// network_filters on tasks/start and modify (net/filters.ts); all ours. `item` is the item as net/filters.ts quotes it.
export const FilterErrors = {
  notJson: e<[text: string]>('FILTER_NOT_JSON', `${FILTERS}not a JSON array: {text}`, 'network_filters a string that is not a JSON array'),
  notArray: e('FILTER_NOT_ARRAY', `${FILTERS}expected an array of "dir,proto,port,cidr,action" strings`, 'network_filters not an array'),
  tooMany: e<[max: number, got: number]>('FILTER_TOO_MANY', `${FILTERS}at most {max} rules, got {got}`, 'more rules than allowed'),
  notString: e<[item: string]>('FILTER_ITEM_NOT_STRING', `${FILTER}must be a string "dir,proto,port,cidr,action"`, 'a rule that is not a string'),
  fieldCount: e<[item: string, got: number]>(
    'FILTER_FIELD_COUNT',
    `${FILTER}expected 5 comma-separated fields "dir,proto,port,cidr,action", got {got}`,
    'a rule without 5 fields',
  ),
  direction: e<[item: string]>('FILTER_DIRECTION', `${FILTER}direction must be in, out or inout`, 'a rule direction not in/out/inout'),
  protocol: e<[item: string, aliases: string]>('FILTER_PROTOCOL', `${FILTER}protocol must be one of all, tcp, udp, icmp, {aliases}`, 'an unknown protocol'),
  portNotAll: e<[item: string, proto: string]>('FILTER_PORT_NOT_ALL', `${FILTER}port must be all for protocol {proto}`, 'a port on a protocol without ports'),
  port: e<[item: string]>('FILTER_PORT', `${FILTER}port must be N or N-M within 1..65535`, 'a port field that does not parse'),
  address: e<[item: string]>('FILTER_ADDRESS', `${FILTER}address must be a.b.c.d or a.b.c.d/n (or 0.0.0.0/0 for any)`, 'an address field that does not parse'),
  action: e<[item: string]>('FILTER_ACTION', `${FILTER}action must be accept or drop`, 'an action not accept/drop'),
  cutsNode: e<[item: string, hit: string]>(
    'FILTER_CUTS_NODE',
    `${FILTER}it would cut the node itself ({hit}) off from the VM`,
    "a drop rule that would cut the node's own access off",
  ),
};
