// Errors of the GPU node's task routes (original §3-7): HTTP 200 with errcode -3, as the original. Texts
// byte-for-byte from ../shared/reference/original-dbc-node.md unless `ours` says otherwise.
import { define, E_DEFAULT, type ErrorArg } from './dbc-error.js';

const e = <A extends readonly ErrorArg[] = []>(code: string, text: string, where: string) => define<A>({ code, errcode: E_DEFAULT, http: 200, text, where });

type PortKind = 'ssh_port' | 'rdp_port' | 'vnc_port';
const PARAM_INVALID = '{name} is invalid';

export const NodeErrors = {
  // --- routing and parameters (node/gpu-node.ts, node/params.ts, node/handlers) -----------------------------------
  routeNotSupported: e<[route: string]>('NODE_ROUTE_NOT_SUPPORTED', 'not support route: {route}', 'a request for a route the node does not serve'),
  additionalNotObject: e('NODE_ADDITIONAL_NOT_OBJECT', 'additional is not object', 'a node request whose additional is not an object'),
  /** a parameter failed validation, named as the original did (`task_id is invalid`, `user name is invalid`) */
  paramInvalid: e<[name: string]>('NODE_PARAM_INVALID', PARAM_INVALID, 'a parameter of the wrong type or form (name: the parameter)'),
  paramEmpty: e<[name: string]>('NODE_PARAM_EMPTY', '{name} is empty', 'a required port parameter missing'),
  paramNotDigit: e<[name: string]>('NODE_PARAM_NOT_DIGIT', '{name} is not digit', 'a port parameter that is not digits'),
  portParamInvalid: e<[name: string]>('NODE_PORT_PARAM_INVALID', `${PARAM_INVALID} (usage: [1, 65535])`, 'a port parameter outside 1..65535'),
  descTooLong: e('NODE_DESC_TOO_LONG', 'desc is too long (max 1024 characters)', 'tasks/start desc above 1024 characters; ours'),
  publicIpNotSupported: e('NODE_PUBLIC_IP_NOT_SUPPORTED', 'public_ip is not supported on this node', 'tasks/start or modify with public_ip; ours'),
  taskNotExist: e('NODE_TASK_NOT_EXIST', 'task_id not exist', "any task route for an unknown task (or another renter's)"),
  taskIdLength: e('NODE_TASK_ID_LENGTH', 'wrong task id length', 'tasks/start with a task_id not 20..22 characters long'),
  taskIdChars: e('NODE_TASK_ID_CHARS', 'task id requires a combination of letters or numbers', 'tasks/start with a task_id of other characters'),
  taskIdExists: e('NODE_TASK_ID_EXISTS', 'task id already existed', 'tasks/start with a task_id in use'),
  operationNotExist: e('NODE_OPERATION_NOT_EXIST', 'operation not exist', "operations/<id> unknown or another renter's; ours"),
  freeMemoryFailed: e<[detail: string]>('NODE_FREE_MEMORY_FAILED', 'free memory failed: {detail}', 'mining_nodes/free_memory failed'),
  noSessionId: e('NODE_NO_SESSION_ID', 'no session id', 'mining_nodes/session_id without a caller'),
  /** ours: probing a host port failed for another reason than "taken" (net/port-probe.ts PortProbeError) */
  portProbeFds: e('NODE_PORT_PROBE_FDS', 'internal error: host is out of file descriptors, try again later', 'a port probe hit EMFILE/ENFILE; ours'),
  /** ours: the ticket routes (node/tickets.ts, docs/events.md) */
  ticketInvalid: e(
    'NODE_TICKET_INVALID',
    'ticket is invalid or expired',
    'a forged, reused, expired or other-kind ticket on the events, console or VNC routes; ours',
  ),
  tooManyTickets: e('NODE_TOO_MANY_TICKETS', 'too many open tickets, use or let expire the ones you have', 'more than 64 unused tickets of one account; ours'),
  consoleNotRunning: e('NODE_CONSOLE_NOT_RUNNING', 'task is not running, no console', 'tasks/console or tasks/vnc for a VM that is not running; ours'),
  tooManyViewers: e('NODE_TOO_MANY_VIEWERS', 'too many viewers on this console', 'more than 200 viewers of one console or display; ours'),
  portProbeMemory: e('NODE_PORT_PROBE_MEMORY', 'internal error: host is out of memory for sockets, try again later', 'a port probe hit ENOBUFS/ENOMEM; ours'),
  portProbeFailed: e<[errno: string]>('NODE_PORT_PROBE_FAILED', 'internal error: cannot probe host ports ({errno})', 'a port probe failed otherwise; ours'),

  // --- tasks/start and tasks/modify (node/params.ts, vm/) ----------------------------------------------------------
  imageNameEmpty: e('NODE_IMAGE_NAME_EMPTY', 'image_name is empty', 'tasks/start without image_name'),
  imageExtension: e('NODE_IMAGE_EXTENSION', "'image_name' extension name is invalid", 'tasks/start image_name not ending in .qcow2'),
  imageNotExist: e<[path: string]>('NODE_IMAGE_NOT_EXIST', "'image_name' is not exist (path:{path})", 'tasks/start with an image the node does not have'),
  imageBusy: e<[name: string]>('NODE_IMAGE_BUSY', 'image:{name} in downloading or uploading', 'not raised at present (kept for the image routes)'),
  dataFileNotExist: e<[path: string]>('NODE_DATA_FILE_NOT_EXIST', 'data_file_name is not exist, path: {path}', 'tasks/start with an unknown data_file_name'),
  dataFileInUse: e<[taskId: string]>(
    'NODE_DATA_FILE_IN_USE',
    'data_file_name is used by another task: {task_id}',
    'tasks/start with a data file another task uses; ours',
  ),
  portConflict: e<[kind: PortKind, port: number]>('NODE_PORT_CONFLICT', 'port conflict, exist {kind} = {port}', 'a port another task of the node uses'),
  portOccupied: e<[kind: PortKind]>('NODE_PORT_OCCUPIED', '{kind} is occupied', 'a port another process of the host uses'),
  vncPortRange: e('NODE_VNC_PORT_RANGE', 'vnc_port is invalid (usage: [5900, 65535])', 'vnc_port / new_vnc_port outside 5900..65535'),
  customPortInvalid: e<[entry: string]>(
    'NODE_CUSTOM_PORT_INVALID',
    'custom_port is invalid: {entry}',
    'a custom_port entry that does not parse; ours (the original skipped it)',
  ),
  customPortConflict: e<[port: number]>('NODE_CUSTOM_PORT_CONFLICT', 'port conflict, exist custom_port = {port}', 'a custom_port host port in use'),
  newPortUsed: e<[kind: string, port: number]>(
    'NODE_NEW_PORT_USED',
    '{kind} {port} has been used!',
    'tasks/modify new_ssh_port / new_rdp_port / new_vnc_port in use',
  ),
  samePorts: e('NODE_SAME_PORTS', 'new_ssh_port and new_rdp_port are the same!', 'tasks/modify with equal new ports'),
  gpuCountInvalid: e('NODE_GPU_COUNT_INVALID', 'gpu_count is invalid (usage: gpu_count >= 0)', 'gpu_count / new_gpu_count not digits'),
  /** per-GPU chain order on a bigger machine: gpu_count must be the order's GPU count (TM:783-832) */
  gpuExactLease: e('NODE_GPU_EXACT_LEASE', 'only use the number what you exactly rented', 'a per-GPU order asking another GPU count'),
  gpuExceedsLease: e('NODE_GPU_EXCEEDS_LEASE', 'gpu_count exceeds number of leases', 'more GPUs than rented'),
  gpuNotAvailable: e<[want: number, have: number]>(
    'NODE_GPU_NOT_AVAILABLE',
    'allocate gpu failed: {want} requested, {have} available for passthrough on this host',
    'not enough free GPUs; ours (the original: allocate gpu failed)',
  ),
  cpuInvalid: e('NODE_CPU_INVALID', 'cpu_cores is invalid', 'cpu_cores / new_cpu_cores not a positive integer'),
  cpuAllocate: e('NODE_CPU_ALLOCATE', 'allocate cpu failed', 'more cores than the host can give'),
  memInvalid: e('NODE_MEM_INVALID', 'mem_size is invalid', 'mem_size / new_mem_size not a positive integer'),
  memAllocate: e('NODE_MEM_ALLOCATE', 'allocate mem failed', 'more memory than the host can give'),
  diskInvalid: e('NODE_DISK_INVALID', 'disk_size is invalid (usage: disk_size > 0)', 'disk_size not a positive number'),
  diskAllocate: e('NODE_DISK_ALLOCATE', 'allocate disk failed', 'disk_size plus the image above what the image directory can keep'),
  unsupportedOs: e<[os: string]>('NODE_UNSUPPORTED_OS', "unsupported operation system: {os} (usage: 'linux' 'windows')", 'operation_system not linux/windows'),
  unsupportedBios: e<[mode: string]>('NODE_UNSUPPORTED_BIOS', "unsupported bios mode: {mode} (usage: 'legacy' 'uefi' 'pxe')", 'bios_mode not legacy/uefi/pxe'),
  interfaceModel: e('NODE_INTERFACE_MODEL', 'invalid interface model type', 'interface_model_type not virtio, e1000 or rtl8139'),

  // --- task state (vm/) --------------------------------------------------------------------------------------------
  taskBusy: e<[status: string]>('NODE_TASK_BUSY', 'task is {status}, please try again later', 'a task route while another operation runs on the task'),
  taskState: e<[state: string]>('NODE_TASK_STATE', 'task is {state}', "a lifecycle route the task's state refuses"),
  passwdNotRunning: e('NODE_PASSWD_NOT_RUNNING', 'Only the running task can change the password', 'tasks/passwd on a task that is not running'),
  passwordEmpty: e('NODE_PASSWORD_EMPTY', 'password can not be empty', 'tasks/passwd without password'),
  userNameEmpty: e('NODE_USER_NAME_EMPTY', 'user name can not be empty', 'tasks/passwd without username'),
  logNotExist: e('NODE_LOG_NOT_EXIST', 'task log not exist', 'tasks/logs before the VM wrote a console log'),
  logLinesInvalid: e('NODE_LOG_LINES_INVALID', 'req_number_of_lines is invalid', 'tasks/logs line_num not 1..100 (node side)'),
  headOrTailInvalid: e('NODE_HEAD_OR_TAIL_INVALID', 'head_or_tail is invalid', 'tasks/logs flag not head or tail (node side)'),
};
