// One SQLite database per node data dir (better-sqlite3, WAL), numbered migrations applied in order.
import Database from 'better-sqlite3';

export type Db = Database.Database;

/** Append-only: never edit a released migration, add the next number. */
export const MIGRATIONS: Array<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'core',
    sql: `
      CREATE TABLE tasks (
        task_id         TEXT PRIMARY KEY,
        wallet          TEXT NOT NULL,            -- renter account that owns the VM
        rent_order      TEXT NOT NULL DEFAULT '',
        status          TEXT NOT NULL,            -- DBC status string (creating, running, closed, ...)
        desc            TEXT NOT NULL DEFAULT '',
        create_time     TEXT NOT NULL,            -- 'YYYY-mm-dd HH:MM:SS' local time, as the original
        created_at      INTEGER NOT NULL,         -- unix ms
        image_name      TEXT NOT NULL,
        os              TEXT NOT NULL,            -- linux | windows
        bios_mode       TEXT NOT NULL,            -- legacy | uefi | pxe
        nic_model       TEXT NOT NULL DEFAULT 'virtio',
        ssh_port        INTEGER NOT NULL DEFAULT 0,
        rdp_port        INTEGER NOT NULL DEFAULT 0,
        vnc_port        INTEGER NOT NULL,
        vnc_password    TEXT NOT NULL,
        login_user      TEXT NOT NULL,
        login_password  TEXT NOT NULL,
        cpu_cores       INTEGER NOT NULL,
        mem_size_gb     INTEGER NOT NULL,
        gpu_count       INTEGER NOT NULL DEFAULT 0,
        gpus            TEXT NOT NULL DEFAULT '[]', -- JSON array of PCI addresses
        disk_size_gb    INTEGER NOT NULL DEFAULT 0,
        custom_ports    TEXT NOT NULL DEFAULT '[]', -- JSON array of original-syntax strings
        multicast       TEXT NOT NULL DEFAULT '[]',
        network_name    TEXT NOT NULL DEFAULT '',
        network_filters TEXT NOT NULL DEFAULT '[]',
        public_ip       TEXT NOT NULL DEFAULT '',
        pending         TEXT NOT NULL DEFAULT '{}', -- changes applied on next boot (cpu/mem/gpu/vnc)
        want_running    INTEGER NOT NULL DEFAULT 1, -- what the renter asked for last; the reconciler follows it
        last_error      TEXT NOT NULL DEFAULT '',
        closed_at       INTEGER,                  -- unix ms when stopped because its rental ended
        updated_at      INTEGER NOT NULL
      );
      CREATE INDEX tasks_wallet ON tasks(wallet);

      CREATE TABLE disks (
        task_id   TEXT NOT NULL,
        name      TEXT NOT NULL,                  -- vda, vdb, ...
        path      TEXT NOT NULL,
        size_gb   INTEGER NOT NULL,
        kind      TEXT NOT NULL,                  -- os | data
        owned     INTEGER NOT NULL DEFAULT 1,     -- 0 when reused via data_file_name (not deleted with the task)
        PRIMARY KEY (task_id, name)
      );

      CREATE TABLE used_nonces (
        wallet   TEXT NOT NULL,
        nonce    TEXT NOT NULL,
        used_at  INTEGER NOT NULL,
        PRIMARY KEY (wallet, nonce)
      ) WITHOUT ROWID;

      CREATE TABLE sessions (
        wallet      TEXT PRIMARY KEY,             -- renter account (or multisig account)
        session_id  TEXT NOT NULL UNIQUE,
        signers     TEXT NOT NULL DEFAULT '[]',   -- multisig signers allowed to sign the session id
        created_at  INTEGER NOT NULL
      );

      CREATE TABLE rentals (
        wallet      TEXT PRIMARY KEY,
        gpus        INTEGER NOT NULL DEFAULT 0,
        until_ms    INTEGER NOT NULL,
        granted_at  INTEGER NOT NULL,
        revoked_at  INTEGER
      );

      CREATE TABLE operations (
        id          TEXT PRIMARY KEY,
        task_id     TEXT NOT NULL,
        wallet      TEXT NOT NULL,
        kind        TEXT NOT NULL,                -- create, start, shutdown, ...
        status      TEXT NOT NULL,                -- pending, running, done, failed
        progress    INTEGER NOT NULL DEFAULT 0,   -- percent
        stage       TEXT NOT NULL DEFAULT '',
        error       TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      );
      CREATE INDEX operations_task ON operations(task_id);

      CREATE TABLE kv (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'storage',
    sql: `
      -- snapshots of a VM's vda (original §9): an incremental qcow2 against the base image, uploaded to an image centre
      CREATE TABLE snapshots (
        task_id      TEXT NOT NULL,
        name         TEXT NOT NULL,               -- snapshot_name
        wallet       TEXT NOT NULL,
        description  TEXT NOT NULL DEFAULT '',
        file         TEXT NOT NULL,               -- local qcow2 (DIR/vms/<task_id>/snapshots/<image_name>)
        image_name   TEXT NOT NULL,               -- file name on the image centre = image_name for tasks/start
        base_image   TEXT NOT NULL,               -- backing file name (in the image directory)
        image_server TEXT NOT NULL DEFAULT '',    -- "ID,host,port,module"
        status       TEXT NOT NULL,               -- creating | uploading | none | failed
        error        TEXT NOT NULL DEFAULT '',
        size_bytes   INTEGER NOT NULL DEFAULT 0,
        operation_id TEXT NOT NULL DEFAULT '',
        create_time  TEXT NOT NULL,               -- 'YYYY-mm-dd HH:MM:SS' local time
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (task_id, name)
      );

      -- rsync transfers between this host and image centres (original §10); resumable
      CREATE TABLE transfers (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,                -- download | upload
        file        TEXT NOT NULL,                -- image file name (as on the image centre)
        local_path  TEXT NOT NULL,                -- download target / upload source
        server      TEXT NOT NULL,                -- "ID,host,port,module"
        wallet      TEXT NOT NULL DEFAULT '',
        owner       TEXT NOT NULL DEFAULT '',     -- '' or 'snapshot:<task_id>/<name>'
        operation_id TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL,                -- running | stopped | interrupted | done | failed
        total_bytes INTEGER NOT NULL DEFAULT 0,
        done_bytes  INTEGER NOT NULL DEFAULT 0,
        error       TEXT NOT NULL DEFAULT '',
        pid         INTEGER NOT NULL DEFAULT 0,   -- the rsync process while running (killed if orphaned)
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      );
      CREATE INDEX transfers_file ON transfers(kind, file);
      CREATE INDEX operations_wallet ON operations(wallet, created_at);
    `,
  },
  {
    version: 3,
    name: 'networks',
    sql: `
      -- private LANs (original §11): one row per network this node knows; members are the tasks whose
      -- network_name names it
      CREATE TABLE networks (
        name         TEXT PRIMARY KEY,            -- network_name, 6-10 letters/digits
        wallet       TEXT NOT NULL,               -- owner (rent_wallet): only it may delete or join
        ip_cidr      TEXT NOT NULL,               -- normalized a.b.c.d/n
        vni          INTEGER NOT NULL,            -- VXLAN id, derived from (wallet, name): equal on every host
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,            -- last time a member existed (idle cleanup)
        updated_at   INTEGER NOT NULL
      );

      -- addresses the node hands out by DHCP (static leases): net '' = the node bridge (bridge mode), else a LAN
      CREATE TABLE addresses (
        task_id  TEXT NOT NULL,
        net      TEXT NOT NULL,
        ip       TEXT NOT NULL,
        mac      TEXT NOT NULL,
        PRIMARY KEY (task_id, net)
      ) WITHOUT ROWID;
      CREATE UNIQUE INDEX addresses_ip ON addresses(net, ip);
    `,
  },
  {
    version: 4,
    name: 'operation bytes',
    sql: `
      -- ops layer (src/ops): bytes moved by transfers and snapshot uploads, next to the percent
      ALTER TABLE operations ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE operations ADD COLUMN bytes_total INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 5,
    name: 'guest readiness',
    sql: `
      -- vm/readiness.ts: the guest answered since its last boot, and when. VMs of an older daemon were up: 1.
      ALTER TABLE tasks ADD COLUMN guest_ready INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE tasks ADD COLUMN guest_ready_time TEXT NOT NULL DEFAULT '';
    `,
  },
];

export function openDb(file: string): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

export function migrate(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    })();
  }
}
