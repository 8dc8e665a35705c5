// The NICs the network driver gives a VM besides the first one; vm/qemu-args.ts turns them into -netdev/-device.

/** `tap` = an existing tap device (bridge mode LAN); `mcast` = QEMU's UDP multicast socket netdev (user-mode LAN, multicast groups) */
export type ExtraNic =
  | { id: string; mac: string; kind: 'tap'; ifname: string; mtu?: number }
  | { id: string; mac: string; kind: 'mcast'; group: string; port: number; localAddr: string; mtu?: number };
