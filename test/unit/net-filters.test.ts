import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DbcError } from '../../src/protocol/errors.js';
import { MAX_NETWORK_FILTERS, formatFilter, isCatchAllAccept, parseNetworkFilter, parseNetworkFilters, type FilterRule } from '../../src/net/filters.js';

const refused = (item: string, why: RegExp | string) => (err: unknown) => {
  if (!(err instanceof DbcError) || !err.code.startsWith('FILTER_')) return false;
  const prefix = `invalid network filter ${JSON.stringify(item)}: `;
  if (!err.message.startsWith(prefix)) return false;
  const rest = err.message.slice(prefix.length);
  return typeof why === 'string' ? rest === why : why.test(rest);
};

const rule = (r: Partial<FilterRule> & Pick<FilterRule, 'text'>): FilterRule => ({
  dir: 'in',
  protos: ['all'],
  portFrom: null,
  portTo: null,
  cidr: null,
  action: 'accept',
  ...r,
});

test('the documented examples parse', () => {
  assert.deepEqual(
    parseNetworkFilter('in,tcp,22,0.0.0.0/0,accept'),
    rule({
      text: 'in,tcp,22,0.0.0.0/0,accept',
      protos: ['tcp'],
      portFrom: 22,
      portTo: 22,
    }),
  );
  assert.deepEqual(parseNetworkFilter('out,all,all,0.0.0.0/0,accept'), rule({ text: 'out,all,all,0.0.0.0/0,accept', dir: 'out' }));
  assert.deepEqual(parseNetworkFilter('in,all,all,0.0.0.0/0,drop'), rule({ text: 'in,all,all,0.0.0.0/0,drop', action: 'drop' }));
  assert.deepEqual(
    parseNetworkFilter('inout,udp,5000-6000,192.168.1.0/24,drop'),
    rule({
      text: 'inout,udp,5000-6000,192.168.1.0/24,drop',
      dir: 'inout',
      protos: ['udp'],
      portFrom: 5000,
      portTo: 6000,
      cidr: '192.168.1.0/24',
      action: 'drop',
    }),
  );
});

test('every alias maps to its protocol and port, ignoring the port field', () => {
  const cases: Array<[string, FilterRule['protos'], number, number]> = [
    ['ssh', ['tcp'], 22, 22],
    ['rdp', ['tcp'], 3389, 3389],
    ['http', ['tcp'], 80, 80],
    ['https', ['tcp'], 443, 443],
    ['ftp', ['tcp'], 20, 21],
    ['dns', ['tcp', 'udp'], 53, 53],
    ['dns(udp)', ['udp'], 53, 53],
    ['dns(tcp)', ['tcp'], 53, 53],
  ];
  for (const [alias, protos, from, to] of cases) {
    for (const port of ['all', '12345', 'garbage', '']) {
      const r = parseNetworkFilter(`in,${alias},${port},0.0.0.0/0,accept`);
      assert.deepEqual([r.protos, r.portFrom, r.portTo], [protos, from, to], `${alias} ${port}`);
    }
  }
  assert.deepEqual(parseNetworkFilter('in,ICMP,all,any,drop').protos, ['icmp']);
  assert.deepEqual(parseNetworkFilter('in,DNS(UDP),53,any,drop').protos, ['udp']);
});

test('ports: single, range, and every any-form', () => {
  assert.deepEqual([parseNetworkFilter('in,tcp,1,any,drop').portFrom, parseNetworkFilter('in,tcp,65535,any,drop').portTo], [1, 65535]);
  const r = parseNetworkFilter('in,udp,7000-7010,any,drop');
  assert.deepEqual([r.portFrom, r.portTo], [7000, 7010]);
  const same = parseNetworkFilter('in,udp,80-80,any,drop');
  assert.deepEqual([same.portFrom, same.portTo], [80, 80]);
  for (const any of ['all', 'ANY', '*', '0', '', ' all ']) {
    for (const proto of ['tcp', 'udp', 'all', 'icmp']) {
      const f = parseNetworkFilter(`in,${proto},${any},any,drop`);
      assert.deepEqual([f.portFrom, f.portTo], [null, null], `${proto} ${JSON.stringify(any)}`);
    }
  }
});

test('addresses: bare, prefixed, host bits normalized, and every any-form', () => {
  assert.equal(parseNetworkFilter('in,all,all,1.2.3.4,drop').cidr, '1.2.3.4/32');
  assert.equal(parseNetworkFilter('in,all,all,1.2.3.4/32,drop').cidr, '1.2.3.4/32');
  assert.equal(parseNetworkFilter('in,all,all,192.168.1.77/24,drop').cidr, '192.168.1.0/24');
  assert.equal(parseNetworkFilter('in,all,all,10.9.8.7/8,drop').cidr, '10.0.0.0/8');
  assert.equal(parseNetworkFilter('in,all,all,1.2.3.4/0,drop').cidr, null);
  for (const any of ['0.0.0.0', '0.0.0.0/0', 'any', 'ALL', ' any ']) {
    assert.equal(parseNetworkFilter(`in,all,all,${any},drop`).cidr, null, any);
  }
});

test('spaces are trimmed and keywords are case-insensitive', () => {
  const r = parseNetworkFilter('  IN , TCP , 22 , 10.0.0.1 , ACCEPT ');
  assert.deepEqual(r, rule({ text: 'IN , TCP , 22 , 10.0.0.1 , ACCEPT', protos: ['tcp'], portFrom: 22, portTo: 22, cidr: '10.0.0.1/32' }));
  assert.equal(parseNetworkFilter('InOut,Https,,Any,Drop').dir, 'inout');
});

test('bad items are refused, naming the item and why', () => {
  const cases: Array<[string, RegExp]> = [
    ['in,tcp,22,0.0.0.0/0', /expected 5 comma-separated fields .* got 4/],
    ['in,tcp,22,0.0.0.0/0,accept,extra', /got 6/],
    ['', /got 1/],
    ['up,tcp,22,0.0.0.0/0,accept', /^direction must be in, out or inout$/],
    ['in,sctp,22,0.0.0.0/0,accept', /^protocol must be one of all, tcp, udp, icmp, ssh, rdp/],
    ['in,tcp,99999,0.0.0.0/0,drop', /^port must be N or N-M within 1\.\.65535$/],
    ['in,tcp,0-5,any,drop', /^port must be N/],
    ['in,tcp,10-5,any,drop', /^port must be N/],
    ['in,tcp,-5,any,drop', /^port must be N/],
    ['in,tcp,22;flush,any,drop', /^port must be N/],
    ['in,tcp,0x16,any,drop', /^port must be N/],
    ['in,all,22,any,drop', /^port must be all for protocol all$/],
    ['in,icmp,8,any,drop', /^port must be all for protocol icmp$/],
    ['in,tcp,22,1.2.3,drop', /^address must be a\.b\.c\.d or a\.b\.c\.d\/n/],
    ['in,tcp,22,1.2.3.4/33,drop', /^address must be/],
    ['in,tcp,22,256.0.0.1,drop', /^address must be/],
    ['in,tcp,22,01.2.3.4,drop', /^address must be/],
    ['in,tcp,22,,drop', /^address must be/],
    ['in,tcp,22,any,reject', /^action must be accept or drop$/],
    ['in,tcp,22,any,', /^action must be accept or drop$/],
  ];
  for (const [item, why] of cases) {
    assert.throws(() => parseNetworkFilters([item]), refused(item, why), item);
  }
  assert.equal(
    (() => {
      try {
        parseNetworkFilters(['in,tcp,99999,0.0.0.0/0,drop']);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })(),
    'invalid network filter "in,tcp,99999,0.0.0.0/0,drop": port must be N or N-M within 1..65535',
  );
  assert.throws(
    () => parseNetworkFilters([22]),
    (e: unknown) => e instanceof DbcError && /^invalid network filter 22: must be a string/.test(e.message),
  );
  assert.throws(() => parseNetworkFilters(['in,all,all,any,accept', null]), /invalid network filter null/);
});

test('lists: arrays, JSON strings, empty forms, limits', () => {
  const items = ['in,tcp,22,any,accept', 'in,all,all,any,drop'];
  assert.deepEqual(parseNetworkFilters(JSON.stringify(items)), parseNetworkFilters(items));
  assert.equal(parseNetworkFilters(JSON.stringify(items)).length, 2);
  for (const none of [undefined, null, '', '  ', 'undefined', 'null', [], '[]']) {
    assert.deepEqual(parseNetworkFilters(none), [], String(none));
  }
  for (const bad of ['[', 'in,tcp,22,any,accept', '{"a":1}', 42, { length: 1 }]) {
    assert.throws(
      () => parseNetworkFilters(bad),
      (e: unknown) => e instanceof DbcError && /^network_filters is invalid: /.test(e.message),
      String(bad),
    );
  }
  const max = Array.from({ length: MAX_NETWORK_FILTERS }, (_, i) => `in,tcp,${i + 1},any,accept`);
  assert.equal(parseNetworkFilters(max).length, MAX_NETWORK_FILTERS);
  assert.throws(
    () => parseNetworkFilters([...max, 'in,all,all,any,drop']),
    (e: unknown) => e instanceof DbcError && e.message === `network_filters is invalid: at most 64 rules, got 65`,
  );
});

test('catch-all accept rules come first, the rest keep their order', () => {
  const list = [
    'in,tcp,22,any,accept',
    'in,all,all,0.0.0.0/0,drop',
    'out,all,all,0.0.0.0/0,accept',
    'in,udp,53,10.0.0.0/8,drop',
    'in,all,*,any,accept',
    'in,all,all,10.0.0.0/8,accept', // not catch-all: has an address
    'in,tcp,all,any,accept', // not catch-all: tcp only
  ];
  const texts = parseNetworkFilters(list).map((r) => r.text);
  assert.deepEqual(texts, [
    'out,all,all,0.0.0.0/0,accept',
    'in,all,*,any,accept',
    'in,tcp,22,any,accept',
    'in,all,all,0.0.0.0/0,drop',
    'in,udp,53,10.0.0.0/8,drop',
    'in,all,all,10.0.0.0/8,accept',
    'in,tcp,all,any,accept',
  ]);
  assert.equal(isCatchAllAccept(parseNetworkFilter('inout,all,0,0.0.0.0,accept')), true);
  assert.equal(isCatchAllAccept(parseNetworkFilter('inout,all,0,0.0.0.0,drop')), false);
});

test('lock-out guard: a drop of exactly a node address is refused', () => {
  const opts = { nodeAddresses: ['203.0.113.7', '10.200.0.1', 'not-an-ip'] };
  for (const item of ['in,all,all,203.0.113.7,drop', 'inout,tcp,22,203.0.113.7/32,drop', 'out,icmp,all,10.200.0.1,drop']) {
    const ip = item.includes('203.') ? '203.0.113.7' : '10.200.0.1';
    assert.throws(() => parseNetworkFilters([item], opts), refused(item, `it would cut the node itself (${ip}) off from the VM`), item);
  }
  // accept of the node, drop of a wider range or another host, and no nodeAddresses: fine
  assert.equal(parseNetworkFilters(['in,all,all,203.0.113.7,accept'], opts).length, 1);
  assert.equal(parseNetworkFilters(['in,all,all,203.0.113.0/24,drop'], opts).length, 1);
  assert.equal(parseNetworkFilters(['in,all,all,203.0.113.8,drop'], opts).length, 1);
  assert.equal(parseNetworkFilters(['in,all,all,203.0.113.7,drop']).length, 1);
});

test('formatFilter gives a canonical item that parses back to the same rule', () => {
  const items = [
    'in,tcp,22,0.0.0.0/0,accept',
    'out,udp,7000-7010,10.1.2.3/16,drop',
    'inout,dns,,any,drop',
    'in,ftp,x,1.2.3.4,accept',
    'in,icmp,*,any,drop',
    'out,all,all,any,accept',
    'in,dns(udp),all,any,drop',
    'in,https,1,any,drop',
  ];
  for (const item of items) {
    const r = parseNetworkFilter(item);
    const text = formatFilter(r);
    assert.deepEqual({ ...parseNetworkFilter(text), text: r.text }, r, item);
  }
  assert.equal(formatFilter(parseNetworkFilter('inout,dns,,any,drop')), 'inout,dns,all,0.0.0.0/0,drop');
  assert.equal(formatFilter(parseNetworkFilter('out,udp,7000-7010,10.1.2.3/16,drop')), 'out,udp,7000-7010,10.1.0.0/16,drop');
  assert.equal(formatFilter(parseNetworkFilter('in,ssh,,1.2.3.4,accept')), 'in,tcp,22,1.2.3.4/32,accept');
});
