// TypeBox schemas of the `additional` objects the GPU node accepts. The node validates with these
// (node/validate.ts) and the OpenAPI document (api/openapi.ts) is generated from the same objects.
// Real clients send numbers as JSON strings ("cpu_cores":"4"); some send numbers. Both are accepted;
// the literal strings "undefined" and "" mean absent (node/params.ts).
import { Type, type TSchema } from '@sinclair/typebox';

const Str = (description: string) => Type.Optional(Type.Union([Type.String(), Type.Number()], { description }));
const StrList = (description: string) => Type.Optional(Type.Union([Type.Array(Type.String()), Type.String()], { description }));

export const CreateTaskAdditional = Type.Object(
  {
    task_id: Str('client-proposed task id: 20-22 letters or digits'),
    image_name: Str('base image in the node image directory, e.g. dbc-test.qcow2 (required)'),
    desc: Str('free text'),
    operation_system: Str("'linux' (default) or 'windows' ('ubuntu'/'win' accepted)"),
    bios_mode: Str("'legacy' (default, SeaBIOS), 'uefi' (OVMF) or 'pxe' (network boot)"),
    ssh_port: Str('host port forwarded to guest port 22 (linux)'),
    rdp_port: Str('host port forwarded to guest port 3389 (windows)'),
    vnc_port: Str('host VNC port, 5900..65535 (required)'),
    gpu_count: Str('GPUs passed through as vfio-pci (>= 0)'),
    cpu_cores: Str('vCPUs (> 0)'),
    mem_size: Str('memory in GB (> 0)'),
    disk_size: Str('data disk in GB (> 0; not for pxe)'),
    data_file_name: Str('reuse an existing data disk file from the node image directory'),
    custom_port: StrList('forwards: "tcp,123", "udp,111:222", "tcp,333-444", "tcp,555-666:777-888"'),
    multicast: StrList('multicast groups "ip:port" (224.0.0.0/4)'),
    network_name: Str('private LAN created with /lan/create'),
    network_filters: StrList('"in|out|inout,proto,port,cidr,accept|drop"'),
    public_ip: Str('dedicated public IP (bridge mode only)'),
    interface_model_type: Str("'virtio' (default), 'e1000' or 'rtl8139'"),
    vm_xml: Str('ignored (original libvirt field)'),
    vm_xml_url: Str('ignored (original libvirt field)'),
  },
  { additionalProperties: true, description: 'tasks/start (create a VM)' },
);

export const ModifyTaskAdditional = Type.Object(
  {
    new_ssh_port: Str('new host port for ssh (applies at once)'),
    new_rdp_port: Str('new host port for rdp (applies at once)'),
    new_vnc_port: Str('new VNC port (next boot)'),
    new_custom_port: StrList('replaces the custom_port list (applies at once)'),
    new_gpu_count: Str('GPUs (next boot)'),
    new_cpu_cores: Str('vCPUs (next boot)'),
    new_mem_size: Str('memory in GB (next boot)'),
    new_public_ip: Str('bridge mode only'),
    new_network_filters: StrList('replaces network_filters'),
    increase_disk_size: Str('not implemented by the original; ignored'),
  },
  { additionalProperties: true, description: 'tasks/modify/<task_id>' },
);

export const PasswdAdditional = Type.Object(
  {
    username: Type.Optional(Type.String({ description: 'login user (e.g. dbc)' })),
    password: Type.Optional(Type.String({ description: 'new password' })),
  },
  { additionalProperties: true, description: 'tasks/passwd/<task_id>' },
);

// --- storage (disks, snapshots, images; original §8-10). Numbers may come as JSON numbers or digit strings.
const Num = (description: string) => Type.Optional(Type.Union([Type.Number(), Type.String()], { description }));

export const DiskResizeAdditional = Type.Object(
  {
    disk: Type.Optional(Type.String({ description: "disk name, e.g. 'vdb' (vda allowed)" })),
    size: Num('GB to ADD to the disk (an increment, as the original; > 0: disks never shrink)'),
  },
  { additionalProperties: true, description: 'disk/resize/<task_id>: grow a disk; online when the VM runs' },
);

export const DiskAddAdditional = Type.Object(
  {
    size: Num('size of the new disk in GB (> 0)'),
    mount_dir: Type.Optional(
      Type.String({
        description:
          "host directory for the disk file: '/data' (default) = the node's image directory, other values only inside directories the operator allows",
      }),
    ),
  },
  { additionalProperties: true, description: 'disk/add/<task_id>: a new qcow2 disk vdX; hot-added over QMP when the VM runs' },
);

export const DiskDeleteAdditional = Type.Object(
  { disk: Type.Optional(Type.String({ description: "disk name, e.g. 'vdc' (never vda)" })) },
  { additionalProperties: true, description: 'disk/delete/<task_id> (VM shut off)' },
);

export const SnapshotCreateAdditional = Type.Object(
  {
    snapshot_name: Type.Optional(Type.String({ description: 'letters, digits, . _ - (at most 64)' })),
    desc: Type.Optional(Type.String({ description: 'free text' })),
    image_server: Type.Optional(Type.String({ description: 'image centre ID from the client configuration, e.g. ID_1' })),
  },
  { additionalProperties: true, description: 'snapshot/create/<task_id> (VM shut off): incremental qcow2 of vda, uploaded to the image centre' },
);

export const ImagesListAdditional = Type.Object(
  { image_server: Type.Optional(Type.String({ description: "image centre ID; with an empty peer_nodes_list: that centre's list" })) },
  { additionalProperties: true, description: 'images' },
);

export const ImageDownloadAdditional = Type.Object(
  {
    image_server: Type.Optional(Type.String({ description: 'image centre ID (required)' })),
    image_filename: Type.Optional(Type.String({ description: 'x.qcow2 as listed by the image centre (required)' })),
    local_dir: Type.Optional(Type.String({ description: "'/data' = the node's image directory (other values only inside directories the operator allows)" })),
  },
  { additionalProperties: true, description: 'images/download' },
);

export const ImageUploadAdditional = Type.Object(
  {
    image_server: Type.Optional(Type.String({ description: 'image centre ID (required)' })),
    image_filename: Type.Optional(Type.String({ description: "x.qcow2 in the image directory ('/data/x.qcow2' accepted)" })),
  },
  { additionalProperties: true, description: 'images/upload' },
);

export const ImageFileAdditional = Type.Object(
  { image_filename: Type.Optional(Type.String({ description: 'x.qcow2' })) },
  { additionalProperties: true, description: 'image_filename' },
);

export const OperationsListAdditional = Type.Object(
  { task_id: Type.Optional(Type.String({ description: "only this task's operations" })) },
  { additionalProperties: true, description: 'operations' },
);

export const OperationWaitAdditional = Type.Object(
  { timeout: Type.Optional(Type.Union([Type.String(), Type.Number()], { description: 'seconds to wait, 0-25 (default 25)' })) },
  { additionalProperties: true, description: 'operations/<id>/wait' },
);

export const LanCreateAdditional = Type.Object(
  {
    network_name: Str('6 to 10 letters or digits'),
    ip_cidr: Str('the LAN subnet, e.g. 192.168.66.0/24'),
  },
  { additionalProperties: true },
);

export const EmptyAdditional = Type.Object({}, { additionalProperties: true, description: 'no parameters' });

export const MultisigAccountsSchema = Type.Object({
  wallets: Type.Array(Type.String()),
  threshold: Type.String({ description: 'a decimal string, e.g. "2"' }),
  signs: Type.Array(Type.Object({ wallet: Type.String(), nonce: Type.String(), sign: Type.String() })),
});

/** The whole request body (parse_req_params). */
export const DbcBodySchema = Type.Object(
  {
    peer_nodes_list: Type.Array(Type.String(), { description: 'target GPU node id (64 hex); only [0] is used' }),
    additional: Type.Object({}, { additionalProperties: true }),
    wallet: Type.Optional(Type.String({ description: 'SS58 wallet (renter)' })),
    nonce: Type.Optional(Type.String({ description: 'single-use nonce signed by the wallet' })),
    sign: Type.Optional(Type.String({ description: 'sr25519 signature of the nonce, hex, with or without 0x' })),
    multisig_accounts: Type.Optional(MultisigAccountsSchema),
    session_id: Type.Optional(Type.String()),
    session_id_sign: Type.Optional(Type.String({ description: 'renter signature over session_id' })),
    rent_order: Type.Optional(Type.String({ description: 'chain rent order id (digits); optional' })),
  },
  { additionalProperties: true },
);

export const Envelope = (message: TSchema) => Type.Object({ errcode: Type.Integer({ description: '0 = success' }), message });

export const ErrorEnvelope = Type.Object({
  errcode: Type.Integer({ description: 'non-zero' }),
  message: Type.String(),
});
