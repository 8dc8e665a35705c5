// What identifiers look like, checked wherever a value becomes a file name or a database key.

/** a task id a client may propose in tasks/start (the original: 20-22 letters or digits) */
export const TASK_ID_RE = /^[A-Za-z0-9]+$/;
/** any task id the node holds (ours: base58, client-proposed, or vm_check_<unix seconds>) */
export const STORED_TASK_ID_RE = /^[A-Za-z0-9_]{1,64}$/;
/** an image file name of the image directory */
export const IMAGE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
