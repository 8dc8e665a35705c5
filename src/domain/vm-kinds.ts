// Small enumerations shared by the domain model and the hypervisor contract (vm/types.ts re-exports them).
export type BiosMode = 'legacy' | 'uefi' | 'pxe';
export type GuestOs = 'linux' | 'windows';
export type NicModel = 'virtio' | 'e1000' | 'rtl8139';
