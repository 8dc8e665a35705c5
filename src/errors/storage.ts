// Errors of disks, snapshots and images (original §8-10): node-side, HTTP 200 with errcode -3. Texts of the original
// where it had one; `ours` where it failed silently or had none.
import { define, E_DEFAULT, type ErrorArg } from './dbc-error.js';

const e = <A extends readonly ErrorArg[] = []>(code: string, text: string, where: string) => define<A>({ code, errcode: E_DEFAULT, http: 200, text, where });

const IMAGE_SERVER_LIST_FAILED = 'list image_server failed: {detail}';

export const StorageErrors = {
  // --- disks (storage/disks.ts) ------------------------------------------------------------------------------------
  pxeNoDisk: e('STORAGE_PXE_NO_DISK', 'pxe not support disk', 'disk/add on a PXE task'),
  diskEmpty: e('STORAGE_DISK_EMPTY', "'disk' is empty", 'disk/resize or disk/delete without disk'),
  diskInvalid: e('STORAGE_DISK_INVALID', "'disk' is invalid (usage: vdb .. vdz)", 'disk not vdb..vdz; ours'),
  diskNotExist: e<[disk: string]>('STORAGE_DISK_NOT_EXIST', 'disk:{disk} is not exist', 'a disk the task does not have; ours'),
  sizeInvalid: e('STORAGE_SIZE_INVALID', "'size' is invalid", 'disk/add or disk/resize size not a positive integer or above the maximum'),
  /** ours: the size is an increment; zero or negative would shrink */
  noShrink: e('STORAGE_NO_SHRINK', "'size' is invalid: disks only grow; size is the number of GB to add", 'disk/resize with size <= 0; ours'),
  closeFirst: e('STORAGE_CLOSE_FIRST', 'please close task first and try again', 'a disk or snapshot route that needs the VM stopped'),
  deleteVda: e('STORAGE_DELETE_VDA', "can not allowed to delete disk:'vda'", 'disk/delete of vda'),
  noDiskName: e('STORAGE_NO_DISK_NAME', 'no free disk name (vdz is the last)', 'disk/add with vdb..vdz all used; ours'),
  mountDirInvalid: e<[dir: string]>('STORAGE_MOUNT_DIR_INVALID', 'mount_dir:{dir} is invalid', 'disk/add mount_dir not a usable path; ours'),
  mountDirNotAllowed: e<[dir: string]>(
    'STORAGE_MOUNT_DIR_NOT_ALLOWED',
    'mount_dir:{dir} is not allowed on this node',
    'disk/add mount_dir outside the configured roots; ours',
  ),
  mountDirNotExist: e<[dir: string]>('STORAGE_MOUNT_DIR_NOT_EXIST', 'mount_dir:{dir} is not exist', 'disk/add mount_dir missing'),
  mountDirNoSpace: e<[dir: string]>(
    'STORAGE_MOUNT_DIR_NO_SPACE',
    'mount directory:{dir} have no enough space',
    "disk/add or resize larger than the mount directory's free space",
  ),
  noSpace: e<[dir: string, needBytes: number, freeBytes: number]>(
    'STORAGE_NO_SPACE',
    '{dir} have no enough space (need {need} bytes, free {free} bytes)',
    'a snapshot or image download larger than the free space',
  ),

  // --- snapshots (storage/snapshots.ts) ----------------------------------------------------------------------------
  pxeNoSnapshot: e('STORAGE_PXE_NO_SNAPSHOT', 'pxe not support snapshot', 'snapshot/create on a PXE task'),
  snapshotNameEmpty: e('STORAGE_SNAPSHOT_NAME_EMPTY', "'snapshot_name' is empty", 'snapshot/create without snapshot_name'),
  snapshotNameInvalid: e(
    'STORAGE_SNAPSHOT_NAME_INVALID',
    "'snapshot_name' is invalid (usage: letters, digits, '.', '_', '-'; at most 64)",
    'snapshot_name of other characters or too long; ours',
  ),
  snapshotExists: e<[name: string]>('STORAGE_SNAPSHOT_EXISTS', 'snapshot_name:{name} already exist', 'snapshot/create with a name in use; ours'),
  snapshotNotExist: e('STORAGE_SNAPSHOT_NOT_EXIST', 'snapshot_name not exist', 'snapshot/list/<task>/<name> of an unknown snapshot'),
  snapshotNotExistNamed: e<[name: string]>('STORAGE_SNAPSHOT_NOT_EXIST_NAMED', '{name} not exist', 'snapshot/delete of an unknown snapshot'),
  snapshotCreating: e<[name: string]>(
    'STORAGE_SNAPSHOT_CREATING',
    'snapshot:{name} is creating, please try again later',
    'snapshot/delete while that snapshot is being created; ours',
  ),
  noBaseImage: e('STORAGE_NO_BASE_IMAGE', 'vda has no base image (backing file)', 'snapshot/create of a task whose vda has no backing file; ours'),

  // --- images (images/node-images.ts, images/transfers.ts, images/client.ts) ---------------------------------------
  noImageServer: e('STORAGE_NO_IMAGE_SERVER', 'no image_server', 'an image route or snapshot upload without an image centre'),
  imageServerInvalid: e('STORAGE_IMAGE_SERVER_INVALID', 'image_server is invalid', 'an image centre without a usable rsync host'),
  imageFilenameEmpty: e('STORAGE_IMAGE_FILENAME_EMPTY', 'additional no image_filename', 'an image route without image_filename'),
  imageFilenameInvalid: e(
    'STORAGE_IMAGE_FILENAME_INVALID',
    "image_filename is invalid (usage: letters, digits, '.', '_', '-', at most 128, ending in .qcow2)",
    'image_filename of other characters; ours',
  ),
  localDirEmpty: e('STORAGE_LOCAL_DIR_EMPTY', 'additional no local_dir', 'images/download without local_dir'),
  localDirInvalid: e<[dir: string]>('STORAGE_LOCAL_DIR_INVALID', 'local_dir:{dir} is invalid', 'local_dir not a usable path; ours'),
  localDirNotAllowed: e<[dir: string]>(
    'STORAGE_LOCAL_DIR_NOT_ALLOWED',
    'local_dir:{dir} is not allowed on this node',
    'local_dir outside the image directory and the allowed directories; ours',
  ),
  localDirNotExist: e<[dir: string]>('STORAGE_LOCAL_DIR_NOT_EXIST', 'local_dir:{dir} is not exist', 'local_dir missing; ours'),
  remoteNotExist: e<[file: string]>('STORAGE_REMOTE_NOT_EXIST', 'image:{file} not exist', 'images/download of a file the centre does not have'),
  inDownloading: e<[file: string]>('STORAGE_IN_DOWNLOADING', 'image:{file} in downloading', 'a second download of the same file'),
  inUploading: e<[file: string]>('STORAGE_IN_UPLOADING', 'image:{file} in uploading', 'a second upload of the same file'),
  notInDownloading: e<[file: string]>('STORAGE_NOT_IN_DOWNLOADING', 'image:{file} is not in downloading', 'download_stop without a running download; ours'),
  notInUploading: e<[file: string]>('STORAGE_NOT_IN_UPLOADING', 'image:{file} is not in uploading', 'upload_stop without a running upload; ours'),
  fileNotExist: e<[file: string]>('STORAGE_FILE_NOT_EXIST', 'image file:{file} is not exist', 'images/upload or delete of a file the node does not have'),
  fileExists: e<[file: string]>('STORAGE_FILE_EXISTS', 'image file:{file} already exist', 'images/download of a file the node already has; ours'),
  fileExistsOnServer: e<[file: string, server: string]>(
    'STORAGE_FILE_EXISTS_ON_SERVER',
    'image file:{file} on image_server {server} already exist',
    'images/upload of a file the centre already has; ours',
  ),
  inTransfer: e('STORAGE_IN_TRANSFER', 'image file is in downloading or uploading, please try again later', 'images/delete of a file in transfer'),
  inUse: e<[file: string, by: string]>('STORAGE_IN_USE', 'image file:{file} is in use by {by}', 'images/delete of a file a task uses; ours'),
  notYours: e<[file: string]>('STORAGE_NOT_YOURS', 'image file:{file} was not downloaded by this renter', "images/delete of another renter's download; ours"),
  listFailed: e<[detail: string]>('STORAGE_LIST_FAILED', IMAGE_SERVER_LIST_FAILED, 'images (list) failed at the centre; ours'),
  listServerUnreachable: e(
    'STORAGE_LIST_UNREACHABLE',
    IMAGE_SERVER_LIST_FAILED.replace('{detail}', 'the image server is unreachable'),
    'images (list, gateway) could not reach the centre; ours',
  ),
  uploadFailed: e<[detail: string]>('STORAGE_UPLOAD_FAILED', 'upload to image_server failed: {detail}', 'an upload that failed at the centre; ours'),
};
