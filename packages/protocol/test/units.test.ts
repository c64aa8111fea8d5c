import test from 'ava';
import { SlicelabError, formatDuration, formatRate, formatSize, parseDuration, parsePercent, parseRate, parseSize } from '@slicelab/protocol';

test('sizes read as the kernel and Docker write them', (t) => {
  t.is(parseSize('4096'), 4096);
  t.is(parseSize(4096), 4096);
  t.is(parseSize('512K'), 512 * 1024);
  t.is(parseSize('256MiB'), 256 * 1024 ** 2);
  t.is(parseSize('1G'), 1024 ** 3);
  t.is(parseSize('1gib'), 1024 ** 3);
  t.is(parseSize('1GB'), 1e9);
  t.is(parseSize('1.5KiB'), 1536);
});

test('rates read as tc writes them: bit units are bits, bps units are bytes', (t) => {
  t.is(parseRate('1gbit'), 1e9);
  t.is(parseRate('100mbit'), 1e8);
  t.is(parseRate('10kbit'), 1e4);
  t.is(parseRate('1mibit'), 1024 ** 2);
  t.is(parseRate('1mbps'), 8e6);
  t.is(parseRate('125kbps'), 1e6);
});

test('durations', (t) => {
  t.is(parseDuration('300ms'), 300);
  t.is(parseDuration('10s'), 10_000);
  t.is(parseDuration('500us'), 0.5);
  t.is(parseDuration('2m'), 120_000);
  t.is(parseDuration('1h'), 3_600_000);
});

test('bad units are refused with a line naming the problem', (t) => {
  const unknown = t.throws(() => parseSize('12parsecs'), { instanceOf: SlicelabError });
  t.regex(unknown.message, /unknown size unit "parsecs"/);
  t.regex(t.throws(() => parseRate('1000'))!.message, /needs a unit/);
  t.regex(t.throws(() => parseDuration(5))!.message, /needs a unit/);
  t.regex(t.throws(() => parseSize('-1G'))!.message, /not a size/);
  t.regex(t.throws(() => parseSize(''))!.message, /not a size/);
  t.is(t.throws(() => parseRate('fast'))!.message, 'not a rate: "fast"');
});

test('formatting round-trips through the parser', (t) => {
  for (const size of ['1GiB', '256MiB', '4KiB']) t.is(formatSize(parseSize(size)), size);
  for (const rate of ['1gbit', '100mbit', '10kbit']) t.is(formatRate(parseRate(rate)), rate);
  for (const duration of ['300ms', '10s', '2m', '500us']) t.is(formatDuration(parseDuration(duration)), duration);
});

test('percentages as tc writes netem loss: 1%, 0.5%, or bare; above 100 or garbage refused', (t) => {
  t.is(parsePercent('1%'), 1);
  t.is(parsePercent('0.5 %'), 0.5);
  t.is(parsePercent(12), 12);
  t.throws(() => parsePercent('150%'), { message: '150% is above 100%' });
  t.throws(() => parsePercent('lots'), { message: 'not a percentage: "lots" (write 1% or 1)' });
  t.throws(() => parsePercent('-1%'), { message: /not a percentage/ });
  t.is(formatDuration(0), '0ms');
});
