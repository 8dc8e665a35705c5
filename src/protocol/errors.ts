// One registry of every DBC error: a stable code, the DBC errcode, the exact text the original node and its real
// clients use, and the HTTP status. Handlers throw these; api/envelope.ts turns them into {errcode, message}.
// Texts are byte-for-byte from ../shared/reference/original-dbc-node.md unless the comment says otherwise.

export class DbcError extends Error {
  constructor(
    readonly code: string,
    readonly errcode: number,
    message: string,
    readonly httpStatus: number = 200,
  ) {
    super(message);
    this.name = 'DbcError';
  }
  toEnvelope(): { errcode: number; message: string } {
    return { errcode: this.errcode, message: this.message };
  }
}

/**
 * The text of an error as a renter may see it (a task's last_error, an operation's error): our own DbcError texts
 * as they are; anything else (QEMU, qemu-img, QMP, the file system) cut to its first line, QEMU's stderr dropped,
 * and every absolute path cut to its last component. The whole text goes to the node log.
 */
export function publicErrorText(err: unknown): string {
  if (err instanceof DbcError) return err.message;
  const raw = err instanceof Error ? err.message : String(err);
  return (raw.split('\n')[0] ?? '')
    .replace(/^(QEMU for VM \S+ [^:]*):.*$/, '$1 (details in the node log)')
    .replace(/(?:\/[^\s/'",:;()[\]]+)+\/?/g, (m) => m.replace(/\/+$/, '').split('/').pop() || '/')
    .slice(0, 500);
}

// errcodes of the original (src/dbc/common/error.h)
export const RPC_INVALID_REQUEST = -32600;
export const RPC_METHOD_NOT_FOUND = -32601;
export const RPC_RESPONSE_ERROR = -32701;
export const RPC_INVALID_PARAMS = -25;
export const E_DEFAULT = -3; // GPU-node generic failure
export const E_TIMEOUT = -1;

const clientErr = (code: string, errcode: number, status: number) => (message: string) =>
  new DbcError(code, errcode, message, status);
const nodeErr = (code: string) => (message: string) => new DbcError(code, E_DEFAULT, message, 200);

// --- raised by the client gateway (HTTP layer); HTTP status as the original --------------------------------
export const ClientErrors = {
  onlyPost: () => new DbcError('DBC_ERR_ONLY_POST', RPC_INVALID_REQUEST, 'only support POST request', 400),
  invalidUri: (uri: string) =>
    new DbcError('DBC_ERR_INVALID_URI', RPC_INVALID_REQUEST, `request uri is invalid, uri:${uri}`, 400),
  notSupportUri: (uri: string) =>
    new DbcError('DBC_ERR_NOT_SUPPORT_URI', RPC_METHOD_NOT_FOUND, `not support uri:${uri}`, 404),
  unhandled: () => new DbcError('DBC_ERR_UNHANDLED', RPC_RESPONSE_ERROR, 'Unhandled request', 500),
  /** `/tasks` with more than two segments (RAS rest_task: -32600, not -25) */
  invalidRequestsUri: () =>
    new DbcError('DBC_ERR_INVALID_URI', RPC_INVALID_REQUEST, 'invalid requests uri', 400),
  /** wrong segment count or route-specific usage text, e.g. `invalid uri, please use /tasks/start/<task_id>` */
  invalidParams: clientErr('DBC_ERR_INVALID_PARAMS', RPC_INVALID_PARAMS, 400),
  emptyBody: () => new DbcError('DBC_ERR_EMPTY_BODY', RPC_INVALID_PARAMS, 'http request body is empty', 400),
  jsonParse: (detail: string) => new DbcError('DBC_ERR_JSON_PARSE', RPC_INVALID_PARAMS, `json parse error: ${detail}`, 400),
  invalidJson: () => new DbcError('DBC_ERR_INVALID_JSON', RPC_INVALID_PARAMS, 'invalid json', 400),
  bodyTooLarge: (limit: number) =>
    new DbcError('DBC_ERR_BODY_TOO_LARGE', RPC_INVALID_PARAMS, `http request body is too large (limit ${limit} bytes)`, 413),
  peerEmpty: () => new DbcError('DBC_ERR_PEER_EMPTY', RPC_INVALID_PARAMS, 'peer_nodeid is empty', 400),
  walletSignInvalid: () =>
    new DbcError('DBC_ERR_NO_CREDENTIAL', RPC_INVALID_PARAMS, 'wallet_sign and multisig_wallets all invalid', 400),
  sessionWalletInvalid: () =>
    new DbcError('DBC_ERR_NO_CREDENTIAL', RPC_INVALID_PARAMS, 'session_id and wallet all invalid', 400),
  createNodeRequestFailed: () =>
    new DbcError('DBC_ERR_NODE_UNKNOWN', RPC_RESPONSE_ERROR, 'create node request failed', 400),
  timeout: (op: string) => new DbcError('DBC_ERR_TIMEOUT', E_TIMEOUT, `${op} timeout`, 500),
  /** ours: the transport failed for another reason than a timeout */
  nodeRequestFailed: (op: string, detail: string) =>
    new DbcError('DBC_ERR_NODE_REQUEST', E_TIMEOUT, `${op} failed: ${detail}`, 500),
  responseParse: () => new DbcError('DBC_ERR_RESPONSE_PARSE', E_TIMEOUT, 'response parse error', 500),
  imageServerNotExist: () => new DbcError('DBC_ERR_IMAGE_SERVER', RPC_INVALID_PARAMS, 'image_server not exist', 400),
  /** ours: a route that needs an image centre got none (the original failed later, on the node: `no image_server`) */
  noImageServer: () => new DbcError('DBC_ERR_IMAGE_SERVER', RPC_INVALID_PARAMS, 'no image_server', 400),
  headOrTailInvalid: () =>
    new DbcError('DBC_ERR_LOG_FLAG', RPC_INVALID_PARAMS, 'head_or_tail is invalid"', 400), // sic: trailing quote
  invalidLineNum: () => new DbcError('DBC_ERR_LOG_LINES', RPC_INVALID_PARAMS, 'invalid line num', 400),
};

// --- raised by the GPU node; HTTP 200 with errcode -3 as the original ---------------------------------------
export const NodeErrors = {
  generic: nodeErr('DBC_ERR_NODE'),
  checkAuthority: (detail: string) =>
    new DbcError('DBC_ERR_AUTH', E_DEFAULT, `check authority failed: ${detail}`, 200),
  taskNotExist: () => new DbcError('DBC_ERR_TASK_NOT_EXIST', E_DEFAULT, 'task_id not exist', 200),
  taskIdLength: () => new DbcError('DBC_ERR_TASK_ID', E_DEFAULT, 'wrong task id length', 200),
  taskIdChars: () =>
    new DbcError('DBC_ERR_TASK_ID', E_DEFAULT, 'task id requires a combination of letters or numbers', 200),
  taskIdExists: () => new DbcError('DBC_ERR_TASK_ID', E_DEFAULT, 'task id already existed', 200),
  /** a VM parameter failed validation; the text names it as the original did (e.g. `cpu_cores is invalid`) */
  invalidParam: nodeErr('DBC_ERR_INVALID_PARAM'),
  imageNameEmpty: () => new DbcError('DBC_ERR_IMAGE', E_DEFAULT, 'image_name is empty', 200),
  imageExtension: () => new DbcError('DBC_ERR_IMAGE', E_DEFAULT, "'image_name' extension name is invalid", 200),
  imageNotExist: (path: string) =>
    new DbcError('DBC_ERR_IMAGE', E_DEFAULT, `'image_name' is not exist (path:${path})`, 200),
  imageBusy: (name: string) => new DbcError('DBC_ERR_IMAGE', E_DEFAULT, `image:${name} in downloading or uploading`, 200),
  dataFileNotExist: (path: string) =>
    new DbcError('DBC_ERR_DATA_FILE', E_DEFAULT, `data_file_name is not exist, path: ${path}`, 200),
  portConflict: (kind: 'ssh_port' | 'rdp_port' | 'vnc_port', port: number) =>
    new DbcError('DBC_ERR_PORT_IN_USE', E_DEFAULT, `port conflict, exist ${kind} = ${port}`, 200),
  portOccupied: (kind: 'ssh_port' | 'rdp_port' | 'vnc_port') =>
    new DbcError('DBC_ERR_PORT_IN_USE', E_DEFAULT, `${kind} is occupied`, 200),
  vncPortRange: () =>
    new DbcError('DBC_ERR_VNC_PORT', E_DEFAULT, 'vnc_port is invalid (usage: [5900, 65535])', 200),
  customPortInvalid: (entry: string) =>
    new DbcError('DBC_ERR_CUSTOM_PORT', E_DEFAULT, `custom_port is invalid: ${entry}`, 200), // ours: original skipped silently
  customPortConflict: (port: number) =>
    new DbcError('DBC_ERR_PORT_IN_USE', E_DEFAULT, `port conflict, exist custom_port = ${port}`, 200),
  gpuCountInvalid: () => new DbcError('DBC_ERR_GPU', E_DEFAULT, 'gpu_count is invalid (usage: gpu_count >= 0)', 200),
  /** per-GPU chain order on a bigger machine: gpu_count must be the order's GPU count (TM:783-832) */
  gpuExactLease: () => new DbcError('DBC_ERR_GPU', E_DEFAULT, 'only use the number what you exactly rented', 200),
  gpuExceedsLease: () => new DbcError('DBC_ERR_GPU', E_DEFAULT, 'gpu_count exceeds number of leases', 200),
  gpuNotAvailable: (want: number, have: number) =>
    new DbcError('DBC_ERR_GPU', E_DEFAULT, `allocate gpu failed: ${want} requested, ${have} available for passthrough on this host`, 200),
  cpuInvalid: () => new DbcError('DBC_ERR_CPU', E_DEFAULT, 'cpu_cores is invalid', 200),
  cpuAllocate: () => new DbcError('DBC_ERR_CPU', E_DEFAULT, 'allocate cpu failed', 200),
  memInvalid: () => new DbcError('DBC_ERR_MEM', E_DEFAULT, 'mem_size is invalid', 200),
  memAllocate: () => new DbcError('DBC_ERR_MEM', E_DEFAULT, 'allocate mem failed', 200),
  diskInvalid: () => new DbcError('DBC_ERR_DISK', E_DEFAULT, 'disk_size is invalid (usage: disk_size > 0)', 200),
  diskAllocate: () => new DbcError('DBC_ERR_DISK', E_DEFAULT, 'allocate disk failed', 200),
  unsupportedOs: (os: string) =>
    new DbcError('DBC_ERR_OS', E_DEFAULT, `unsupported operation system: ${os} (usage: 'linux' 'windows')`, 200),
  unsupportedBios: (mode: string) =>
    new DbcError('DBC_ERR_BIOS', E_DEFAULT, `unsupported bios mode: ${mode} (usage: 'legacy' 'uefi' 'pxe')`, 200),
  interfaceModel: () => new DbcError('DBC_ERR_NIC', E_DEFAULT, 'invalid interface model type', 200),
  taskBusy: (status: string) =>
    new DbcError('DBC_ERR_TASK_BUSY', E_DEFAULT, `task is ${status}, please try again later`, 200),
  taskState: (state: string) => new DbcError('DBC_ERR_TASK_STATE', E_DEFAULT, `task is ${state}`, 200),
  passwdNotRunning: () =>
    new DbcError('DBC_ERR_PASSWD', E_DEFAULT, 'Only the running task can change the password', 200),
  passwordEmpty: () => new DbcError('DBC_ERR_PASSWD', E_DEFAULT, 'password can not be empty', 200),
  userNameEmpty: () => new DbcError('DBC_ERR_PASSWD', E_DEFAULT, 'user name can not be empty', 200),
  logNotExist: () => new DbcError('DBC_ERR_LOG', E_DEFAULT, 'task log not exist', 200),
  logLinesInvalid: () => new DbcError('DBC_ERR_LOG', E_DEFAULT, 'req_number_of_lines is invalid', 200),
  noSessionId: () => new DbcError('DBC_ERR_SESSION', E_DEFAULT, 'no session id', 200),
  newPortUsed: (kind: string, port: number) =>
    new DbcError('DBC_ERR_PORT_IN_USE', E_DEFAULT, `${kind} ${port} has been used!`, 200),
  samePorts: () => new DbcError('DBC_ERR_PORT_IN_USE', E_DEFAULT, 'new_ssh_port and new_rdp_port are the same!', 200),
  additionalInvalid: (detail: string) => new DbcError('DBC_ERR_ADDITIONAL', E_DEFAULT, detail, 200),
  internal: (detail: string) => new DbcError('DBC_ERR_INTERNAL', E_DEFAULT, detail, 200),
};

// --- disks, snapshots, images (original §8-10); node-side, HTTP 200 with errcode -3. Texts of the original where it
// had one; `(ours)` where it failed silently or had none.
const storageErr = (message: string) => new DbcError('DBC_ERR_STORAGE', E_DEFAULT, message, 200);
export const StorageErrors = {
  pxeNoDisk: () => storageErr('pxe not support disk'),
  pxeNoSnapshot: () => storageErr('pxe not support snapshot'),
  diskEmpty: () => storageErr("'disk' is empty"),
  diskInvalid: () => storageErr("'disk' is invalid (usage: vdb .. vdz)"), // ours
  diskNotExist: (disk: string) => storageErr(`disk:${disk} is not exist`), // ours
  sizeInvalid: () => storageErr("'size' is invalid"),
  /** ours: the size is an increment; zero or negative would shrink */
  noShrink: () => storageErr("'size' is invalid: disks only grow; size is the number of GB to add"),
  closeFirst: () => storageErr('please close task first and try again'),
  deleteVda: () => storageErr("can not allowed to delete disk:'vda'"),
  noDiskName: () => storageErr('no free disk name (vdz is the last)'), // ours
  mountDirInvalid: (dir: string) => storageErr(`mount_dir:${dir} is invalid`), // ours
  mountDirNotAllowed: (dir: string) => storageErr(`mount_dir:${dir} is not allowed on this node`), // ours
  mountDirNotExist: (dir: string) => storageErr(`mount_dir:${dir} is not exist`),
  mountDirNoSpace: (dir: string) => storageErr(`mount directory:${dir} have no enough space`),
  snapshotNameEmpty: () => storageErr("'snapshot_name' is empty"),
  snapshotNameInvalid: () => storageErr("'snapshot_name' is invalid (usage: letters, digits, '.', '_', '-'; at most 64)"), // ours
  snapshotExists: (name: string) => storageErr(`snapshot_name:${name} already exist`), // ours
  snapshotNotExist: () => storageErr('snapshot_name not exist'),
  snapshotNotExistNamed: (name: string) => storageErr(`${name} not exist`),
  noBaseImage: () => storageErr('vda has no base image (backing file)'), // ours
  noSpace: (dir: string, needBytes: number, freeBytes: number) =>
    storageErr(`${dir} have no enough space (need ${needBytes} bytes, free ${freeBytes} bytes)`),
  noImageServer: () => storageErr('no image_server'),
  imageServerInvalid: () => storageErr('image_server is invalid'),
  imageFilenameEmpty: () => storageErr('additional no image_filename'),
  imageFilenameInvalid: () =>
    storageErr("image_filename is invalid (usage: letters, digits, '.', '_', '-', at most 128, ending in .qcow2)"), // ours
  localDirEmpty: () => storageErr('additional no local_dir'),
  localDirInvalid: (dir: string) => storageErr(`local_dir:${dir} is invalid`), // ours
  localDirNotAllowed: (dir: string) => storageErr(`local_dir:${dir} is not allowed on this node`), // ours
  localDirNotExist: (dir: string) => storageErr(`local_dir:${dir} is not exist`), // ours
  remoteNotExist: (file: string) => storageErr(`image:${file} not exist`),
  inDownloading: (file: string) => storageErr(`image:${file} in downloading`),
  inUploading: (file: string) => storageErr(`image:${file} in uploading`),
  notInDownloading: (file: string) => storageErr(`image:${file} is not in downloading`), // ours
  notInUploading: (file: string) => storageErr(`image:${file} is not in uploading`), // ours
  fileNotExist: (file: string) => storageErr(`image file:${file} is not exist`),
  fileExists: (file: string) => storageErr(`image file:${file} already exist`), // ours
  inTransfer: () => storageErr('image file is in downloading or uploading, please try again later'),
  inUse: (file: string, by: string) => storageErr(`image file:${file} is in use by ${by}`), // ours
  notYours: (file: string) => storageErr(`image file:${file} was not downloaded by this renter`), // ours
  listFailed: (detail: string) => storageErr(`list image_server failed: ${detail}`), // ours
  uploadFailed: (detail: string) => storageErr(`upload to image_server failed: ${detail}`), // ours
};

// --- private LANs, multicast (original §11, §6.3); node-side, errcode -3. `(ours)` where the original had no text.
const lanErr = (message: string) => new DbcError('DBC_ERR_LAN', E_DEFAULT, message, 200);
export const LanErrors = {
  nameEmpty: () => lanErr('network name can not be empty'),
  nameInvalid: () => lanErr('network name requires a combination of 6 to 10 letters or numbers'),
  nameExists: () => lanErr('network name already existed'),
  vniFull: () => lanErr('network vni is full'),
  cidrEmpty: () => lanErr('ip cidr can not be empty'),
  /** the original's text, plus which network it overlaps (ours) */
  cidrExists: (detail: string) => lanErr(`ip cidr already exist: ${detail}`),
  /** the original's text, plus why (ours) */
  cidrInvalid: (detail?: string) => lanErr(detail ? `invalid ip cidr: ${detail}` : 'invalid ip cidr'),
  notExist: () => lanErr('network name not exist'),
  notOwner: () => lanErr('wallet error, you are not the owner of the network'),
  inUse: () => lanErr('network is in used, please delete task in the network first'),
  /** tasks/start with an unknown network_name (or another renter's) */
  noNetworkInfo: () => lanErr('can not find network info'),
  full: (name: string) => lanErr(`network ${name} has no free address`), // ours
  multicastFormat: () => lanErr('multicast format: ip:port'),
  notMulticast: () => lanErr('address is not a multicast address'),
  multicastPort: () => lanErr('invalid multicast port'),
  /** ours: groups the node keeps for its own LAN segments in user mode */
  multicastReserved: (group: string) => lanErr(`multicast address ${group} is reserved by the node`),
};

// Texts of check_authority failures (sent as `check authority failed: <text>`)
export const AuthFailures = {
  nonceCheckFailed: 'nonce check failed',
  sessionInvalid: 'session_id is invalid',
  walletNotRented: 'wallet not rented',
  expired: 'machine has already expired',
  notRented: 'machine is not be rented',
  queryStatusFailed: 'query machine_status failed',
  notInVerifyTime: 'not in verify time',
  noCredential: 'no credential given',
  multisigWalletsEmpty: 'multisig wallets is empty',
  multisigSignsEmpty: 'multisig signs is empty',
  multisigThresholdInvalid: 'multisig threshold is invalid',
  multisigWalletInvalid: 'multisig wallets has an invalid address',
  multisigSignItemEmpty: 'multisig sign wallet, nonce or sign is empty',
  multisigSignWalletNotFound: (wallet: string) => `multisig sign_wallet ${wallet} not found in wallets`,
  multisigTooFewSigners: 'multisig distinct signers fewer than threshold',
  /** ours: the original's text plus why (chain unreachable longer than the outage grace) */
  chainUnavailable: (detail: string) => `query machine_status failed: ${detail}`,
  /** ours: a committee verifier on a renter-only route (the original refused these without a text of its own) */
  verifierNotAllowed: 'verifier can not use this route',
  /** ours: a wallet (or multisig item) nonce longer than 128 characters or not printable ASCII, refused unverified */
  nonceInvalid: 'nonce must be 1 to 128 printable ASCII characters',
  /** ours: the account spent its failed-authentication budget (src/auth/budget.ts); refused unverified */
  tooManyFailures: 'too many failed attempts, try again later',
} as const;

export function toEnvelope(err: unknown): { status: number; body: { errcode: number; message: string } } {
  if (err instanceof DbcError) return { status: err.httpStatus, body: err.toEnvelope() };
  const text = err instanceof Error ? err.message : String(err);
  return { status: 200, body: { errcode: E_DEFAULT, message: `internal error: ${text}` } };
}
